"""Files written by earlier aekeras versions still load, with their weights."""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from aekeras import models
from aekeras.training import AtomicBackupAndRestore, TrainConfig, train

# `aekeras train conv` (20 epochs on MNIST), saved on 2026-12-01 by aekeras
# 0.1.0 before `blocks.OutputConv2D`: its output convolution's weights are
# filed under the plain Conv2D's name.
OLDER_CONV = Path(__file__).parent / "data" / "conv_saved_before_output_conv2d.keras"
# Its run.json's test MSE on [0, 1] over the 10,000 MNIST test images, measured when it was saved.
OLDER_CONV_TEST_MSE = 0.012640567496418953


def test_a_conv_model_saved_before_output_conv2d_loads_with_its_weights(mnist_test_arrays):
    with pytest.raises(ValueError, match="could not be loaded"):
        keras.models.load_model(OLDER_CONV)  # Keras alone does not find the output layer's weights
    model = models.load_model(OLDER_CONV)
    assert isinstance(model.decoder.layers[-1], models.blocks.OutputConv2D)
    images = mnist_test_arrays[0]
    test_mse = float(np.mean(np.square(model.reconstruct(images) - images)))
    assert test_mse == pytest.approx(OLDER_CONV_TEST_MSE, rel=1e-5)
    assert type(model.decoder.layers[-1]).__name__ == "OutputConv2D"  # the older name was only borrowed


def test_a_backup_written_before_output_conv2d_resumes(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    with zipfile.ZipFile(OLDER_CONV) as archive:  # the same weights file a backup of that version held
        (backup / "latest.weights.h5").write_bytes(archive.read("model.weights.h5"))
    (backup / "training_metadata.json").write_text('{"epoch": 3, "batch": -1}')
    older = models.load_model(OLDER_CONV)
    model = type(older).from_config(older.get_config())
    model.compile(optimizer="adam")
    assert not np.array_equal(model.get_weights()[-2], older.get_weights()[-2])
    restore = AtomicBackupAndRestore(str(backup))
    restore.set_model(model)
    restore.on_train_begin()
    for restored, saved in zip(model.get_weights(), older.get_weights(), strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert model._initial_epoch == 3  # and it resumes after the epochs the backup holds


def test_a_file_that_is_no_model_still_fails_with_its_own_reason(tmp_path):
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(OLDER_CONV) as archive, zipfile.ZipFile(broken, "w") as copy:
        for item in archive.infolist():
            if item.filename != "model.weights.h5":
                copy.writestr(item, archive.read(item))
    with pytest.raises(
        models.ModelFileError, match="broken.keras: cannot load it .*Expected a model.weights.h5"
    ):
        models.load_model(broken)
    assert models.blocks.OutputConv2D.__name__ == "OutputConv2D"


def test_a_folder_run_backed_up_before_file_names_resumes(
    tmp_path, mnist_test_arrays, interrupt_after_the_first_epoch
):
    """A folder run interrupted under aekeras before `file_names` (no such key in its run_state.json) resumes.

    Its settings lack the digest of the files' names, which it cannot be
    checked on: refused, every such run would have to start afresh.
    """
    images, labels = mnist_test_arrays
    for i in range(60):
        (tmp_path / "digits" / str(labels[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(images[i, ..., 0] * 255).astype(np.uint8)).save(
            tmp_path / "digits" / str(labels[i]) / f"{i:02d}.png"
        )

    config = TrainConfig(
        data=str(tmp_path / "digits"), epochs=2, batch_size=30, out=str(tmp_path / "out"),
        run_dir=str(tmp_path / "runs"), verbose=0,
    )  # fmt: skip
    interrupt_after_the_first_epoch(config)
    state = tmp_path / "runs" / "dense" / "backup" / "run_state.json"
    recorded = json.loads(state.read_text())
    assert recorded["settings"].pop("file_names") is not None  # as that version wrote it
    state.write_text(json.dumps(recorded, indent=2) + "\n")
    result = train(config)
    assert result["resumes"] == 1
    assert result["history"]["epoch"] == [0.0, 1.0]  # the interrupted attempt's epoch kept, once
