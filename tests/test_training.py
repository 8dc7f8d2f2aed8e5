import csv
import dataclasses
import errno
import json
import os
import shutil
import signal
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from aekeras import cli, data, optimizers, registry, training
from aekeras.errors import ModelFileError, SettingsChangedError, TrainingInterrupted
from aekeras.models import VAE, DenoisingAutoencoder, DenseAutoencoder
from aekeras.registry import get_model
from aekeras.training import AtomicBackupAndRestore, TrainConfig, read_history, resume, runner, train
from aekeras.training.callbacks import EpochCheckpoint
from aekeras.training.resume import RunClock, completed_epochs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        epochs=2, limit=2048, out=str(root / "saved_models"), run_dir=str(root / "runs"), verbose=0
    )
    return config, train(config)


def _small_run(tmp_path):
    """Three quick epochs of the lecture's model, writing under `tmp_path`."""
    return TrainConfig(
        epochs=3,
        limit=512,
        batch_size=128,
        out=str(tmp_path / "out"),
        run_dir=str(tmp_path / "runs"),
        verbose=0,
    )


def _scalars(log_dir):
    """`{tag: {step: value}}` of the scalars in a TensorBoard log folder's event files."""
    found = {}
    for path in tf.io.gfile.glob(str(log_dir / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return found


def _pictures(log_dir):
    """`{tag: [uint8 picture, ...]}` of the images in a TensorBoard log folder's event files."""
    found = {}
    for path in tf.io.gfile.glob(str(log_dir / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                pngs = tf.make_ndarray(value.tensor)[2:]  # after the width and height
                found.setdefault(value.tag, []).extend(tf.io.decode_png(png).numpy() for png in pngs)
    return found


def test_validation_freq_says_which_epochs_are_validated(tmp_path):
    config = _small_run(tmp_path)
    every_other = train(dataclasses.replace(config, validation_freq=2, name="every-other"))["history"]
    assert every_other["val_loss"][0] is None and every_other["val_loss"][2] is None
    assert every_other["val_loss"][1] > 0
    never = train(dataclasses.replace(config, validation_freq=0, name="never"))
    assert not any(key.startswith("val_") for key in never["history"])
    assert not (tmp_path / "runs/never/logs/validation").exists()
    assert (
        never["test_metrics"]["reconstruction_loss"] > 0
    )  # the test figures come after training all the same
    with pytest.raises(ValueError, match="validation_freq must be 0 or more, got -1"):
        train(dataclasses.replace(config, validation_freq=-1))


def test_run_writes_everything(run, mnist_test_arrays):
    config, result = run
    run_dir = f"{config.run_dir}/dense"
    assert result["run_dir"] == run_dir and result["export"] == f"{config.out}/dense/1"
    run_path = Path(run_dir)
    assert sorted(p.name for p in (run_path / "checkpoints").iterdir()) == [
        "epoch-001.keras",
        "epoch-002.keras",
    ]
    assert any((run_path / "logs" / "train").iterdir())
    # TensorBoard's pictures: reconstructions each epoch, and the projector of 1,000 test codes.
    assert len(list((run_path / "logs" / "images").glob("events.out.tfevents.*"))) == 1
    projector = run_path / "logs" / "projector"
    assert (projector / "projector_config.pbtxt").is_file()
    metadata = (projector / "metadata.tsv").read_text().splitlines()
    assert metadata[0] == "label\tclass" and len(metadata) == 1001
    assert not (run_path / "backup").exists()  # removed once training completes
    history = read_history(run_path / "history.csv")
    assert history["epoch"] == [0.0, 1.0] and history["loss"][1] < history["loss"][0]
    # Validated on the test split every epoch: the last is the run's own test figure.
    assert len(history["val_reconstruction_loss"]) == 2
    assert history["val_reconstruction_loss"][1] == pytest.approx(
        result["test_metrics"]["reconstruction_loss"], rel=1e-5
    )
    assert _scalars(run_path / "logs" / "validation")["epoch_reconstruction_loss"] == pytest.approx(
        dict(enumerate(history["val_reconstruction_loss"])), rel=1e-6
    )
    record = json.loads((Path(result["export"]) / "run.json").read_text())
    assert record == json.loads((run_path / "run.json").read_text())
    assert record["settings"]["epochs"] == 2 and record["history"] == history
    assert record["environment"]["tensorflow"].startswith("2.21")
    # The reconstructions' top row: the first 8 test digits as stored, 28 pixels each.
    (grid, *_) = _pictures(run_path / "logs" / "images")["reconstructions"]
    first_eight = np.concatenate(list(mnist_test_arrays[0][:8]), axis=1) * 255
    np.testing.assert_allclose(grid[:28], first_eight, atol=1)


class _SavesAnEmptyFile:
    def save(self, path):
        Path(path).write_bytes(b"")


@pytest.mark.parametrize("keep, kept", [(1, [1000]), (2, [999, 1000]), (0, [1, 998, 999, 1000])])
def test_a_run_keeps_the_checkpoints_of_its_latest_epochs(tmp_path, keep, kept):
    # Every epoch's, each with the optimizer's state, filled disks: 65 GB
    # over 500 epochs of a VAE of 2,000-unit layers. An earlier attempt's
    # count too, in epoch order (1000 after 999, which names sort first).
    for epoch in (1, 998):
        (tmp_path / f"epoch-{epoch:03d}.keras").write_bytes(b"")
    checkpoint = EpochCheckpoint(tmp_path, keep)
    checkpoint.set_model(_SavesAnEmptyFile())

    def epochs():
        return sorted(int(p.stem.removeprefix("epoch-")) for p in tmp_path.iterdir())

    for epoch in (998, 999):  # 0-based: epochs 999 and 1000
        checkpoint.on_epoch_begin(epoch)
        if keep:  # pruned as each epoch begins, not only as training ends
            assert len(epochs()) == keep
        checkpoint.on_epoch_end(epoch)
        # Until the epoch's backup is written (after this callback), a kill
        # resumes after the epoch before: its checkpoint stays till then.
        assert epoch in epochs()
    checkpoint.on_train_end()
    assert epochs() == kept


def test_keras_builds_its_saving_reference_objects_once():
    # Keras cached them under another name than it looked them up by: every
    # save built a Layer, an Optimizer and more again, and the process kept
    # 65 KB of each epoch's two saves for good (60 MB over 400 epochs).
    from keras.src.saving import saving_lib

    assert saving_lib.get_attr_skipset("Optimizer") is saving_lib.get_attr_skipset("Optimizer")


def test_recorded_test_metrics_are_the_saved_models(run):
    config, result = run
    model = keras.models.load_model(result["model"])
    test = data.load("mnist", "test", value_range=model.value_range)
    metrics = model.evaluate(test, verbose=0, return_dict=True)
    assert metrics["reconstruction_loss"] == pytest.approx(
        result["test_metrics"]["reconstruction_loss"], rel=1e-5
    )


def test_same_seed_same_model(run, tmp_path):
    config, result = run
    again = TrainConfig(
        epochs=2, limit=2048, out=str(tmp_path / "out"), run_dir=str(tmp_path / "runs"), verbose=0
    )
    assert train(again)["test_metrics"] == result["test_metrics"]


def test_a_run_trains_on_the_stored_pixels_and_tests_on_scaled_images():
    config = TrainConfig(limit=512, verbose=0)
    model = DenseAutoencoder()
    train_data, test_data, _ = runner._pipelines(
        config, runner.open_data(config), model, tf.distribute.get_strategy()
    )
    # The model scales the training batches in its step; the test figures
    # read the test batches themselves.
    assert train_data.element_spec == tf.TensorSpec((256, 28, 28, 1), tf.uint8)
    assert test_data.element_spec.dtype == tf.float32
    assert np.concatenate(list(test_data)).min() == model.value_range[0]
    # Under a strategy, Keras averages a first batch over the replicas,
    # which TensorFlow's collectives cannot do in uint8.
    mirrored = dataclasses.replace(config, strategy="mirrored")
    train_data, _, _ = runner._pipelines(
        mirrored, runner.open_data(mirrored), model, tf.distribute.get_strategy()
    )
    assert train_data.element_spec.dtype == tf.float32


def test_cosine_schedule_decays_to_a_tenth_over_the_run(tmp_path):
    config = TrainConfig(
        epochs=3,
        limit=1024,
        batch_size=128,
        learning_rate=2e-3,
        learning_rate_schedule="cosine",
        out=str(tmp_path / "out"),
        run_dir=str(tmp_path / "runs"),
        verbose=0,
    )
    result = train(config)
    model = keras.models.load_model(result["model"])
    assert int(model.optimizer.iterations) == 3 * 8
    assert float(model.optimizer.learning_rate) == pytest.approx(2e-4, rel=1e-3)
    assert type(model.optimizer) is optimizers.Adam  # the fused one, saved and loaded as such
    assert result["settings"]["learning_rate_schedule"] == "cosine"
    with pytest.raises(ValueError, match="unknown learning_rate_schedule 'step'"):
        TrainConfig(learning_rate_schedule="step").validate()


def test_a_relative_data_folder_is_recorded_where_any_shell_finds_it(monkeypatch, tmp_path):
    # `aekeras tflite` reads an export's data from its run.json, from whatever folder it is run in.
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(data_dir="../shared/mnist", out="out", run_dir="runs")
    assert config.read_options()["data_dir"] == str(tmp_path / "../shared/mnist")
    config.validate()
    with pytest.raises(
        ModelFileError, match=r"^out\[1\]/dense: TensorFlow cannot read a SavedModel back from"
    ):
        dataclasses.replace(config, out="out[1]").validate()  # refused before training, not after


def test_a_row_cut_short_after_the_backed_up_epochs_does_not_stop_the_resume(tmp_path):
    """A run killed while logging its epoch 1 row, backed up after epoch 0: the torn row is trimmed, not refused."""
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,0.5,0.4\n1,0.3")
    training.records.check_history(path, 1)
    training.records.trim_history(path, 1)
    assert read_history(path) == {"epoch": [0.0], "loss": [0.5], "val_loss": [0.4]}
    path.write_text("epoch,loss,val_loss\n0,0.5\n")
    with pytest.raises(SettingsChangedError, match="2 values in epoch 0's row, 3 in the header"):
        training.records.check_history(path, 1)


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,0.5,NA\n1,0.4,NA\n1,0.39,NA\n2,0.3,NA\n")
    assert read_history(path) == {"epoch": [0.0, 1.0, 2.0], "loss": [0.5, 0.39, 0.3]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "gan"}, "unknown model 'gan'"),
        ({"options": {"noise": "gaussian"}}, "the dense model does not take noise"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"steps_per_execution": 0}, "steps_per_execution must be a positive integer, got 0"),
        ({"batch_shards": 0}, "batch_shards must be a positive integer, got 0"),
        ({"batch_size": -5}, "batch_size must be a positive integer"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive number"),
        ({"data": "cifar10"}, "cifar10: no such file or folder"),
        ({"data": "tfds:cifar10"}, "tfds:cifar10: not prepared"),
        ({"strategy": "tpu"}, "unknown strategy 'tpu'"),
        ({"intra_op_threads": -1}, "intra_op_threads must be 0 or more, got -1"),
        ({"keep_checkpoints": -1}, "keep_checkpoints must be 0 or more, got -1"),
        ({"seed": -1}, "seed must be an integer from 0 to 4294967295, got -1"),
        ({"seed": 2**32}, "seed must be an integer from 0 to 4294967295, got 4294967296"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(tmp_path, change, message):
    config = TrainConfig(out=str(tmp_path / "out"), run_dir=str(tmp_path / "runs"), **change)
    with pytest.raises(ValueError, match=message):
        train(config)
    assert list(tmp_path.iterdir()) == []


def test_multi_worker_needs_a_usable_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"strategy 'multi_worker' needs \$TF_CONFIG, such as"):
        training.check_tf_config()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match=r"^\$TF_CONFIG is not valid JSON \(Expecting property name"):
        training.check_tf_config()
    for bad in (
        '{"cluster": {"worker": ["a:1"]}}',
        '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
        '{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
    ):
        monkeypatch.setenv("TF_CONFIG", bad)
        with pytest.raises(ValueError, match=r"does not name a chief or worker task of its cluster"):
            training.check_tf_config()
    monkeypatch.setenv(
        "TF_CONFIG",
        '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}',
    )
    training.check_tf_config()


def test_a_nan_loss_stops_training_naming_epoch_and_batch(tmp_path, monkeypatch):
    make_dataset = data.make_dataset

    def load_with_one_nan_batch(examples, spec, **kwargs):
        if not kwargs.get("shuffle"):  # the test split
            return make_dataset(examples, spec, **kwargs)
        # Float batches, which can hold a NaN (the run's own are uint8 pixels).
        dataset = make_dataset(examples, spec, **{**kwargs, "keep_uint8": False})
        # Counts the batches drawn over all epochs: the 7th is epoch 2's 3rd.
        drawn = tf.Variable(0)

        def poison(images):
            drawn.assign_add(1)
            return images * tf.where(drawn == 7, float("nan"), 1.0)

        return dataset.map(poison)

    monkeypatch.setattr(runner.data, "make_dataset", load_with_one_nan_batch)
    config = _small_run(tmp_path)
    checkpoint = tmp_path / "runs/dense/checkpoints/epoch-001.keras"
    with pytest.raises(FloatingPointError) as error:
        train(config)
    assert str(error.value) == (
        "training stopped: the loss became nan at epoch 2, batch 3; the last good checkpoint "
        f"is {checkpoint}; look for NaN or infinite values, or pixels off the model's scale, in the data, or rerun with a lower "
        "--learning-rate (it resumes after epoch 1)"
    )
    # The broken epoch saved nothing: the checkpoint and backup of epoch 1 are kept.
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["epoch-001.keras"]
    assert all(np.isfinite(w).all() for w in keras.models.load_model(checkpoint).get_weights())
    assert read_history(tmp_path / "runs/dense/history.csv")["epoch"] == [0.0]
    assert not (tmp_path / "out").exists()

    monkeypatch.setattr(runner.data, "make_dataset", make_dataset)
    result = train(config)
    assert result["history"]["epoch"] == [0.0, 1.0, 2.0]
    assert np.isfinite(result["test_metrics"]["loss"])


def test_a_backup_interrupted_while_written_keeps_the_previous_one(tmp_path, mnist_test_arrays):
    """A kill while the backup is written must not cost the backup already there."""
    images = mnist_test_arrays[0][:64]

    class Killed(Exception):
        pass

    class KillDuringSecondBackup(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.backed_up = self.model.get_weights()
            if epoch == 1:

                def torn_write(filepath, overwrite=True):
                    Path(filepath).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
                    raise Killed

                self.model.save_weights = torn_write

    keras.utils.set_random_seed(0)
    model = DenseAutoencoder(latent_dim=4)
    model.compile(optimizer="adam")
    killer = KillDuringSecondBackup()
    backup_dir = str(tmp_path / "backup")
    with pytest.raises(Killed):
        model.fit(
            images, epochs=3, batch_size=32, verbose=0, callbacks=[killer, AtomicBackupAndRestore(backup_dir)]
        )

    class Restored(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = self.model.get_weights()

    resumed = DenseAutoencoder(latent_dim=4)
    resumed.compile(optimizer="adam")
    restored = Restored()
    history = resumed.fit(
        images, epochs=3, batch_size=32, verbose=0, callbacks=[AtomicBackupAndRestore(backup_dir), restored]
    )
    assert len(history.history["loss"]) == 2  # epochs 2 and 3
    for a, b in zip(restored.weights, killer.backed_up, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_backup_that_counts_an_epoch_has_its_settings_whenever_it_is_killed(
    tmp_path, monkeypatch, mnist_test_arrays
):
    # Ctrl-C lands between two of the backup's renames: the epoch count is
    # written last, so a backup that counts an epoch already has the run's
    # settings, and the same command resumes it instead of being refused.
    images = mnist_test_arrays[0][:64]
    backup_dir = tmp_path / "backup"
    settings = {"model": "dense", "batch_size": 32}
    clock = RunClock(backup_dir, settings)
    replace = os.replace

    def interrupted_once_the_epoch_is_counted(source, target):
        replace(source, target)
        if str(target).endswith("training_metadata.json"):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_once_the_epoch_is_counted)
    model = DenseAutoencoder(latent_dim=4)
    model.compile(optimizer="adam")
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            images,
            epochs=2,
            batch_size=32,
            verbose=0,
            callbacks=[AtomicBackupAndRestore(str(backup_dir), clock)],
        )
    monkeypatch.setattr(os, "replace", replace)
    resumed = RunClock(backup_dir, settings)  # no SettingsChangedError
    assert (resumed.resumed_after, resumed.resumes) == (1, 1)
    with pytest.raises(SettingsChangedError, match="batch_size 32 -> 64"):
        RunClock(backup_dir, {**settings, "batch_size": 64})
    # --restart reads nothing of the backup, so other settings are no error; it stays until the run deletes it.
    fresh = RunClock(backup_dir, {**settings, "batch_size": 64}, discard_backup=True)
    assert (fresh.resumed_after, fresh.resumes, fresh.seconds_before) == (None, 0, 0.0)
    assert backup_dir.is_dir()


def test_a_backup_that_counts_no_epoch_is_no_backup(tmp_path, monkeypatch, capsys):
    """A Ctrl-C as training began left the backup folder without an epoch count.

    The next run, told that nothing was kept, was refused as of other settings
    (`batch_size None -> 256`, ...); Keras would have loaded any weights file there.
    """
    backup_dir = tmp_path / "runs/dense/backup"
    backup_dir.mkdir(parents=True)
    assert RunClock(backup_dir, {"model": "dense"}).resumed_after is None
    stale = DenseAutoencoder(latent_dim=30)
    stale.save_weights(backup_dir / "latest.weights.h5")
    monkeypatch.chdir(tmp_path)
    args = ["train", "dense", "--epochs", "1", "--limit", "256", "--quiet", "--seed", "3"]
    assert cli.main(args) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "saved_models/dense/1/run.json").read_text())
    assert record["resumes"] == 0 and not backup_dir.exists()


def _interrupted_in_third_epoch(config, monkeypatch):
    """Runs `config` with a Ctrl-C as its third epoch begins: its backup keeps two."""

    class CtrlCInThirdEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    run_callbacks = runner.run_callbacks
    monkeypatch.setattr(
        runner, "run_callbacks", lambda *a, **k: [*run_callbacks(*a, **k), CtrlCInThirdEpoch()]
    )
    with pytest.raises(TrainingInterrupted):
        train(config)
    monkeypatch.setattr(runner, "run_callbacks", run_callbacks)


def test_an_interrupted_run_is_not_resumed_with_fewer_epochs_than_it_trained(tmp_path, monkeypatch):
    config = _small_run(tmp_path)
    _interrupted_in_third_epoch(config, monkeypatch)
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    with pytest.raises(
        SettingsChangedError,
        match=r"runs/dense holds the backup of an interrupted run that had trained 2 epochs, more than "
        r"--epochs 1; pass --epochs 2 or more to finish it, or --restart",
    ):
        train(dataclasses.replace(config, epochs=1))
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before  # nothing touched
    # Another schedule would drop the backup's optimizer state (Keras skips a state of other variables).
    with pytest.raises(SettingsChangedError, match=r"learning_rate_schedule 'constant' -> 'cosine'"):
        train(dataclasses.replace(config, learning_rate_schedule="cosine"))
    # As many epochs as it trained: nothing left to train, so it is evaluated and published.
    result = train(dataclasses.replace(config, epochs=2))
    assert result["history"]["epoch"] == [0.0, 1.0] and (tmp_path / "out/dense/1").is_dir()


def test_history_has_the_evaluation_only_columns_when_the_first_epoch_is_not_validated(tmp_path, monkeypatch):
    """Keras's CSVLogger fixed the columns at an epoch not validated: val_clean_reconstruction_loss
    had none, and the resumed run's validated rows were a field longer than the header."""
    config = dataclasses.replace(_small_run(tmp_path), model="denoising", epochs=4, validation_freq=2)
    _interrupted_in_third_epoch(config, monkeypatch)
    result = train(config)
    assert result["resumes"] == 1
    with open(tmp_path / "runs/denoising/history.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == [
        "epoch",
        "loss",
        "reconstruction_loss",
        "val_clean_reconstruction_loss",
        "val_loss",
        "val_reconstruction_loss",
    ]
    assert [len(row) for row in rows] == [6] * 4
    history = result["history"]
    assert [v is None for v in history["val_clean_reconstruction_loss"]] == [True, False, True, False]
    # Each figure in its own column: the clean loss is not the loss of the corrupted inputs.
    assert history["val_loss"][3] == pytest.approx(history["val_reconstruction_loss"][3])
    assert history["val_clean_reconstruction_loss"][3] != pytest.approx(history["val_loss"][3])


def test_flags_that_restate_the_images_own_size_resume_the_run(tmp_path, monkeypatch):
    """`--image-size 28x28 --channels 1` on MNIST reads what no flags read; it was refused as other settings."""
    config = _small_run(tmp_path)
    _interrupted_in_third_epoch(config, monkeypatch)
    with pytest.raises(SettingsChangedError, match=r"image_spec\.shape \[28, 28, 1\] -> \[14, 14, 1\]"):
        train(dataclasses.replace(config, image_size=(14, 14)))
    result = train(dataclasses.replace(config, image_size=(28, 28), channels=1))
    assert result["history"]["epoch"] == [0.0, 1.0, 2.0] and result["resumes"] == 1


def test_intra_op_threads_cannot_change_a_running_tensorflow(tmp_path):
    tf.zeros(1).numpy()  # TensorFlow has started, with its own thread pools
    # Other than what it started with, which an earlier test in this process may have set.
    threads = 4 if tf.config.threading.get_intra_op_parallelism_threads() == 3 else 3
    config = TrainConfig(intra_op_threads=threads, out=str(tmp_path / "out"), run_dir=str(tmp_path / "runs"))
    with pytest.raises(ValueError, match=f"intra_op_threads {threads} must be set before TensorFlow starts"):
        train(config)
    assert list(tmp_path.iterdir()) == []


def test_intra_op_threads_reach_tensorflow_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    script = (
        "import tensorflow as tf\n"
        "tf.config.optimizer.set_experimental_options({'min_graph_nodes': 7})  # the process's own\n"
        "from aekeras.training import TrainConfig, train\n"
        f"train(TrainConfig(epochs=1, limit=512, verbose=0, intra_op_threads=2, out={str(tmp_path / 'out')!r}, "
        f"run_dir={str(tmp_path / 'runs')!r}))\n"
        "print('threads', tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "threads 2" in result.stdout
    record = json.loads((tmp_path / "out/dense/1/run.json").read_text())
    assert record["settings"]["intra_op_threads"] == 2
    assert record["environment"]["intra_op_threads"] == 2
    assert record["environment"]["grappler_min_graph_nodes"] == 7  # kept, not aekeras's


@pytest.mark.parametrize(
    ("model", "options", "threads"),
    [("dense", {}, 1), ("dense", {"latent_dim": 64}, 1), ("dense", {"latent_dim": 500}, 0), ("conv", {}, 0)],
)
def test_each_model_has_its_default_threads(model, options, threads):
    assert get_model(model).default_intra_op_threads(options) == threads


def test_default_threads_leave_a_running_tensorflow_alone(tmp_path):
    tf.zeros(1).numpy()  # TensorFlow has started, with its own thread pools
    before = tf.config.threading.get_intra_op_parallelism_threads()
    config = TrainConfig(
        epochs=1, limit=256, verbose=0, out=str(tmp_path / "out"), run_dir=str(tmp_path / "runs")
    )
    result = train(config)
    assert result["environment"]["intra_op_threads"] == before
    assert (tmp_path / "out/dense/1/saved_model.pb").is_file()


def test_a_fresh_run_sets_an_earlier_finished_one_aside_and_a_ctrl_c_loses_neither(tmp_path, monkeypatch):
    config = dataclasses.replace(_small_run(tmp_path), epochs=1)
    train(config)
    run_dir = tmp_path / "runs" / "dense"
    first = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    class CtrlCInFirstEpoch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            raise KeyboardInterrupt

    run_callbacks = runner.run_callbacks
    monkeypatch.setattr(
        runner, "run_callbacks", lambda *a, **k: [*run_callbacks(*a, **k), CtrlCInFirstEpoch()]
    )
    messages = []
    with pytest.raises(TrainingInterrupted):
        train(dataclasses.replace(config, learning_rate=1e-4), progress=messages.append)
    (kept,) = (run_dir / "previous").iterdir()
    assert messages == [f"{run_dir} held an earlier run; its files are now in {kept}"]
    # Every file of the finished run, byte for byte, beside the new run's own.
    assert {p.relative_to(kept): p.read_bytes() for p in kept.rglob("*") if p.is_file()} == first
    assert not (run_dir / "model.keras").exists()


def test_fresh_runs_within_one_second_each_set_the_one_before_aside(tmp_path, monkeypatch):
    """Three runs started in the same second (a script's retries): each earlier run kept in a folder of its own."""
    start = time.gmtime(0)
    monkeypatch.setattr(runner.time, "gmtime", lambda *_: start)
    run_dir = tmp_path / "dense"
    kept = []
    for attempt in range(3):
        run_dir.mkdir(exist_ok=True)
        (run_dir / "history.csv").write_text(f"epoch,loss\n0,{attempt}\n")
        kept.append(runner._set_aside_earlier_run(run_dir))
    assert [path.name for path in kept] == ["19700101T000000Z", "19700101T000000Z-1", "19700101T000000Z-2"]
    assert [read_history(path / "history.csv")["loss"] for path in kept] == [[0.0], [1.0], [2.0]]
    assert runner._set_aside_earlier_run(run_dir) is None  # nothing left to set aside


def test_the_test_split_is_read_in_large_batches_whatever_the_training_batch():
    """`--batch-size 2` evaluated 5,000 batches of 2, a minute of per-batch cost for the same figures."""
    config = TrainConfig(batch_size=2, limit=64, verbose=0)
    source = runner.open_data(config)
    model = registry.build_model("dense", source.spec)
    train_data, test_data, _ = runner._pipelines(config, source, model, tf.distribute.get_strategy())
    assert int(train_data.cardinality()) == 32
    assert int(test_data.cardinality()) == 10  # MNIST's 10,000 test images in batches of 1,000


def test_train_seconds_count_the_fit_and_not_the_test_figures_after_it(tmp_path, monkeypatch):
    fit_seconds = []
    fit, evaluate = runner._fit, runner.evaluate_model

    def timed_fit(*args, **kwargs):
        started = time.time()
        fit(*args, **kwargs)
        fit_seconds.append(time.time() - started)

    def slow_evaluation(*args, **kwargs):
        time.sleep(5)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(runner, "_fit", timed_fit)
    monkeypatch.setattr(runner, "evaluate_model", slow_evaluation)
    record = train(dataclasses.replace(_small_run(tmp_path), epochs=1))
    # The clock starts a moment before the fit; the 5 s of test figures are not training.
    assert fit_seconds[0] - 0.01 <= record["train_seconds"] < fit_seconds[0] + 2.5  # recorded to 0.01 s


def test_a_resumed_run_logs_each_epoch_once_in_history_csv(tmp_path, monkeypatch):
    class CtrlCBeforeTheSecondBackup(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt  # epoch 2 is logged and checkpointed, not backed up

    run_callbacks = runner.run_callbacks
    with monkeypatch.context() as patched:
        patched.setattr(
            runner,
            "run_callbacks",
            lambda *a, **k: (lambda found: [*found[:-1], CtrlCBeforeTheSecondBackup(), found[-1]])(
                run_callbacks(*a, **k)
            ),
        )
        with pytest.raises(TrainingInterrupted):
            train(_small_run(tmp_path))
    history_csv = tmp_path / "runs/dense/history.csv"
    assert [row.split(",")[0] for row in history_csv.read_text().splitlines()[1:]] == ["0", "1"]
    record = train(_small_run(tmp_path))
    # Epoch 2 ran again; its first row went with the epoch it logged.
    assert [row.split(",")[0] for row in history_csv.read_text().splitlines()[1:]] == ["0", "1", "2"]
    assert record["history"]["epoch"] == [0.0, 1.0, 2.0] and record["resumes"] == 1


def test_a_folder_changed_since_the_interrupt_is_not_resumed(
    tmp_path, interrupt_after_the_first_epoch, rgb_crops_folder
):
    folder = tmp_path / "crops"
    shutil.copytree(rgb_crops_folder / "train", folder)  # one folder: its test split is held out

    config = dataclasses.replace(
        _small_run(tmp_path), model="conv", data=str(folder), limit=None, batch_size=64
    )
    interrupt_after_the_first_epoch(config)
    count = len(list(folder.iterdir()))
    for path in sorted(folder.iterdir())[:5]:
        shutil.copy(path, folder / f"copy-{path.name}")
    train_before, train_after = count - round(0.1 * count), count + 5 - round(0.1 * (count + 5))
    with pytest.raises(SettingsChangedError, match=rf"examples.train {train_before} -> {train_after}"):
        train(config)


def test_a_resumed_run_draws_new_noise_not_its_first_epochs_again(tmp_path, mnist_test_arrays):
    """Keras's weights files leave out a SeedGenerator's state: the denoising masks and VAE draws replayed."""
    images = mnist_test_arrays[0][:64]
    backup_dir = str(tmp_path / "backup")

    def denoiser():
        model = DenoisingAutoencoder(DenseAutoencoder(latent_dim=4), seed=5)
        model.compile(optimizer="adam")
        return model

    class StateAtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.state = self.model.seed_generator.state.numpy().copy()

    first = denoiser()
    first.fit(images, epochs=1, batch_size=32, verbose=0, callbacks=[AtomicBackupAndRestore(backup_dir)])
    after_epoch_one = first.seed_generator.state.numpy()
    resumed, start = denoiser(), StateAtStart()
    fresh_state = resumed.seed_generator.state.numpy().copy()
    resumed.fit(
        images, epochs=2, batch_size=32, verbose=0, callbacks=[AtomicBackupAndRestore(backup_dir), start]
    )
    assert not np.array_equal(after_epoch_one, fresh_state)
    np.testing.assert_array_equal(start.state, after_epoch_one)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DenoisingAutoencoder(DenseAutoencoder(latent_dim=4), seed=5),
        lambda: VAE(latent_dim=2, hidden_dims=(16,), seed=5),
    ],
    ids=["denoising", "vae"],
)
def test_validation_draws_apart_from_training_and_the_same_each_time(build, mnist_test_arrays):
    """Validation drew from training's stream: --validation-freq changed the weights, and its noise every epoch."""
    images = mnist_test_arrays[0][:256]

    def trained(validation_data):
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(optimizer="adam")
        model.fit(images, epochs=2, batch_size=64, verbose=0, validation_data=validation_data)
        return model

    validated, unvalidated = trained(images[:64]), trained(None)
    for kept, without in zip(validated.get_weights(), unvalidated.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, without)
    first, second = (validated.evaluate(images[:64], verbose=0, return_dict=True) for _ in range(2))
    assert first == second
    whole = validated.evaluate(images[:64], batch_size=64, verbose=0, return_dict=True)
    one_batch = [validated.test_on_batch(images[:64], return_dict=True) for _ in range(2)]
    assert one_batch[0] == one_batch[1] == whole
    # Training's stream is left where training left it, and still draws afresh.
    np.testing.assert_array_equal(validated.seed_generator.state, unvalidated.seed_generator.state)


def test_a_resumed_run_shuffles_anew_rather_than_replaying_its_first_epochs(tmp_path, monkeypatch):
    def first_epoch_order(config):
        """The first training batch a run draws: which images come first."""
        seen = []
        make_dataset = runner.data.make_dataset

        def recording(*args, **kwargs):
            dataset = make_dataset(*args, **kwargs)
            if kwargs.get("shuffle"):
                seen.append(next(iter(dataset)).numpy())
            return dataset

        with monkeypatch.context() as patched:
            patched.setattr(runner.data, "make_dataset", recording)
            try:
                train(config)
            except TrainingInterrupted:
                pass
        return seen[0]

    class CtrlCAfterTheFirstBackup(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    config = _small_run(tmp_path)
    run_callbacks = runner.run_callbacks
    monkeypatch.setattr(
        runner, "run_callbacks", lambda *a, **k: [*run_callbacks(*a, **k), CtrlCAfterTheFirstBackup()]
    )
    fresh = first_epoch_order(config)
    monkeypatch.setattr(runner, "run_callbacks", run_callbacks)
    resumed = first_epoch_order(config)
    assert not np.array_equal(fresh, resumed)
    # A fresh run in another folder starts with the same order: the seed still decides it.
    again = first_epoch_order(
        dataclasses.replace(config, run_dir=str(tmp_path / "other"), out=str(tmp_path / "o2"))
    )
    np.testing.assert_array_equal(fresh, again)


def test_a_resumed_run_trains_at_the_learning_rate_it_is_given(tmp_path, mnist_test_arrays):
    """The weights file holds the optimizer's rate: the NaN stop's advice, a lower rate, must take effect."""
    images = mnist_test_arrays[0][:64]
    backup_dir = str(tmp_path / "backup")

    def trained(learning_rate, epochs):
        model = DenseAutoencoder(latent_dim=4)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
        history = model.fit(
            images, epochs=epochs, batch_size=32, verbose=0, callbacks=[AtomicBackupAndRestore(backup_dir)]
        )
        return model, history

    trained(1e-3, epochs=1)
    resumed, history = trained(1e-5, epochs=2)
    assert history.epoch == [1]  # it did resume, after the first epoch
    assert float(resumed.optimizer.learning_rate.numpy()) == pytest.approx(1e-5)
    assert int(resumed.optimizer.iterations.numpy()) == 4  # the rest of the optimizer's state came back


def test_evaluate_model_takes_the_pixels_as_stored(mnist_dir):
    # As `aekeras.data.load(..., keep_uint8=True)` gives them; scaled ones give the same figures.
    model = registry.build_model("dense", None, seed=0, latent_dim=8)  # computes on [-1, 1]
    model.compile(optimizer="adam")
    read = {"data_dir": mnist_dir, "batch_size": 64, "limit": 128}
    stored = data.load("mnist", "test", **read, keep_uint8=True)
    scaled = data.load("mnist", "test", **read, value_range=model.value_range)
    assert next(iter(stored)).dtype == tf.uint8
    from_pixels, from_floats = training.evaluate_model(model, stored), training.evaluate_model(model, scaled)
    assert from_pixels.keys() == from_floats.keys() >= {"loss", "mse_01"}
    for name, value in from_floats.items():
        assert from_pixels[name] == pytest.approx(value, rel=1e-5), name


def _pressing_ctrl_c_before(function, once_exists):
    """`function`, run after a Ctrl-C reaches this process once the path `once_exists` does."""

    def pressed_first(*args, **kwargs):
        if once_exists.exists():
            os.kill(os.getpid(), signal.SIGINT)
        return function(*args, **kwargs)

    return pressed_first


def test_a_ctrl_c_after_publishing_lets_the_command_finish(tmp_path, monkeypatch, ctrl_c_at_its_default):
    """It said 'evaluates and publishes it', and the rerun trained or published the same model again."""
    from aekeras import export as exporting

    published = tmp_path / "out/dense/1"
    monkeypatch.setattr(runner, "remove_backup", _pressing_ctrl_c_before(runner.remove_backup, published))
    monkeypatch.setattr(
        exporting, "write_models_config", _pressing_ctrl_c_before(exporting.write_models_config, published)
    )
    args = ["train", "dense", "--epochs", "1", "--limit", "512", "--quiet"]
    args += ["--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")]
    assert cli.main(args) == 0
    assert sorted(p.name for p in (tmp_path / "out/dense").iterdir()) == ["1"]
    assert not (tmp_path / "runs/dense/backup").exists()
    assert "out/dense" in (tmp_path / "out/models.config").read_text()


def test_a_backup_counting_epochs_without_its_weights_is_refused(tmp_path, monkeypatch):
    """A removal cut short (a kill) left the count without the weights: the rerun published fresh weights."""
    config = _small_run(tmp_path)
    _interrupted_in_third_epoch(config, monkeypatch)
    backup = tmp_path / "runs/dense/backup"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    # Cut short after its first file, the removal leaves nothing to resume: the count goes first.
    with monkeypatch.context() as patched:
        patched.setattr(resume.shutil, "rmtree", killed)
        with pytest.raises(KeyboardInterrupt):
            resume.remove_backup(backup)
    assert completed_epochs(backup) == 0 and (backup / "latest.weights.h5").is_file()
    # A count whose weights are gone, however that came about, is refused in one line.
    _interrupted_in_third_epoch(dataclasses.replace(config, restart=True), monkeypatch)
    (backup / "latest.weights.h5").unlink()
    with pytest.raises(SettingsChangedError, match=r"counts 2 epochs but has no weights .* pass --restart"):
        train(config)


def test_a_failed_backup_write_leaves_no_hdf5_file_open(tmp_path, mnist_test_arrays, monkeypatch):
    """Keras closes its weights file only when every write succeeded: on a full disk, HDF5 flushed the
    open file as the process ended, failed, and the process died of a segmentation fault (exit 139)."""
    import h5py

    model = DenseAutoencoder(latent_dim=4)
    model.compile(optimizer="adam")
    model.fit(mnist_test_arrays[0][:64], epochs=1, batch_size=32, verbose=0)
    backup = AtomicBackupAndRestore(str(tmp_path / "backup"))
    backup.set_model(model)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model.decoder.layers[0], "save_own_variables", disk_full)
    with pytest.raises(OSError, match="No space left") as raised:
        backup._save_model()
    # Closed while the error (whose traceback holds Keras's open file) is alive, where the disk is still full.
    assert raised.value.__traceback__ is not None and h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE) == []
    assert list((tmp_path / "backup").iterdir()) == []  # and the partial file is gone


def test_evaluation_draws_stay_apart_in_every_replica_after_a_merge_call(mnist_test_arrays):
    """Flagged on the model, a replica waiting in a merge_call saw another's step clear it: it drew from training's stream."""

    class Counting(VAE):
        def build(self, input_shape):
            super().build(input_shape)
            self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False, aggregation="sum")

        def compute_loss_terms(self, inputs, targets, training=False, **kwargs):
            if not training:
                self.seen.assign_add(1.0)  # an on-write variable updated in replica context: a merge_call
            return super().compute_loss_terms(inputs, targets, training=training, **kwargs)

    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        model = Counting(latent_dim=2, hidden_dims=(16,), seed=5)
        model.compile(optimizer="adam")
    images = mnist_test_arrays[0][:128]
    first, second = (model.evaluate(images, verbose=0, return_dict=True) for _ in range(2))
    assert first == second
    assert [v.numpy().tolist() for v in model.seed_generator.state.value.values] == [[5, 0]] * 2
