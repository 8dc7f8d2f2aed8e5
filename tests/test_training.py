import json
from pathlib import Path

import keras
import numpy as np
import pytest

from aekeras import data
from aekeras.training import TrainConfig, read_history, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        epochs=2, limit=2048, out=str(root / "saved_models"), run_dir=str(root / "runs"), verbose=0
    )
    return config, train(config)


def test_run_writes_everything(run):
    config, result = run
    run_dir = f"{config.run_dir}/dense"
    assert result["run_dir"] == run_dir and result["export"] == f"{config.out}/dense/1"
    run_path = Path(run_dir)
    assert sorted(p.name for p in (run_path / "checkpoints").iterdir()) == ["epoch-001.keras", "epoch-002.keras"]
    assert any((run_path / "logs" / "train").iterdir())
    assert not (run_path / "backup").exists()  # removed once training completes
    history = read_history(run_path / "history.csv")
    assert history["epoch"] == [0.0, 1.0] and history["loss"][1] < history["loss"][0]
    record = json.loads((Path(result["export"]) / "run.json").read_text())
    assert record == json.loads((run_path / "run.json").read_text())
    assert record["settings"]["epochs"] == 2 and record["history"] == history
    assert record["environment"]["tensorflow"].startswith("2.21")


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


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,0.5,NA\n1,0.4,NA\n1,0.39,NA\n2,0.3,NA\n")
    assert read_history(path) == {"epoch": [0.0, 1.0, 2.0], "loss": [0.5, 0.39, 0.3]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": "gan"}, "unknown model 'gan'"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": -5}, "batch_size must be a positive integer"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive number"),
        ({"dataset": "cifar10"}, "unknown dataset 'cifar10'"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(tmp_path, change, message):
    config = TrainConfig(out=str(tmp_path / "out"), run_dir=str(tmp_path / "runs"), **change)
    with pytest.raises(ValueError, match=message):
        train(config)
    assert list(tmp_path.iterdir()) == []
