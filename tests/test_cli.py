"""The `aekeras` command, run as a user runs it: in a real subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aekeras.training import read_history

AEKERAS = [sys.executable, "-m", "aekeras"]


def run(args, cwd, timeout=300):
    return subprocess.run(
        [*AEKERAS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def stderr_line(result):
    """The one line a failing command prints, TensorFlow's log noise aside."""
    lines = [l for l in result.stderr.splitlines() if l.startswith("aekeras")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_train_then_export_end_to_end(tmp_path):
    result = run(["train", "dense", "--epochs", "2", "--limit", "1024"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Epoch 2/2" in result.stdout  # Keras's progress output
    mse = float(result.stdout.split("test reconstruction_loss: ")[1].split()[0])
    assert 0 < mse < 1
    version = tmp_path / "saved_models" / "dense" / "1"
    assert (version / "saved_model.pb").is_file()
    record = json.loads((version / "run.json").read_text())
    assert record["test_metrics"]["reconstruction_loss"] == pytest.approx(mse, abs=1e-6)

    exported = run(["export", "runs/dense", "--name", "dense", "--serving-root", "/models"], cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "SavedModel: saved_models/dense/2" in exported.stdout
    assert json.loads((tmp_path / "saved_models/dense/2/run.json").read_text()) == record
    config = (tmp_path / "saved_models/models.config").read_text()
    assert 'name: "dense"' in config and 'base_path: "/models/dense"' in config

    converted = run(["tflite", "saved_models/dense/2", "--quantize", "int8", "--calibration-images", "100"], cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "saved_models/dense/2/dense-int8.tflite").is_file()
    litert, saved = (float(v.split()[0].rstrip(",")) for v in converted.stdout.split("LiteRT ")[1].split("SavedModel "))
    assert saved == pytest.approx(record["test_metrics"]["mse_01"], rel=1e-4) and litert <= 1.1 * saved


def test_console_script_and_help(tmp_path):
    script = Path(sys.executable).parent / "aekeras"
    result = subprocess.run([str(script), "train", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--latent-dim" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "gan"], "argument model: invalid choice: 'gan'"),
        (["fly"], "invalid choice: 'fly'"),
        (["train", "dense", "--epochs", "-3"], "-3 is not a positive integer"),
        (["train", "dense", "--epochs", "0"], "0 is not a positive integer"),
        (["train", "dense", "--batch-size", "many"], "'many' is not an integer"),
        (["train", "dense", "--latent-dim", "0"], "0 is not a positive integer"),
        (["train", "dense", "--learning-rate=-1e-3"], "-1e-3 is not a positive number"),
        (["train", "dense", "--data-dir", "no/such/folder"], "no/such/folder: data folder does not exist"),
        (["train", "dense", "--out", "/proc/aekeras"], "--out /proc/aekeras: /proc is not writable"),
        (["train", "dense", "--run-dir", "a_file/runs"], "a_file is not a folder"),
        (["export", "nothing.keras", "--name", "x"], "nothing.keras: expected a .keras file"),
        (["tflite", "saved_models/dense/9"], "saved_models/dense/9: no saved_model.pb"),
        (["tflite", ".", "--quantize", "int4"], "argument --quantize: invalid choice: 'int4'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    (tmp_path / "a_file").write_text("")
    result = run(args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert message in stderr_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_empty_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(["train", "dense", "--data-dir", "empty"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "empty: no train-images-idx3-ubyte or train-images-idx3-ubyte.gz" in stderr_line(result)


def test_killed_run_resumes_from_the_last_completed_epoch(tmp_path):
    args = ["train", "dense", "--epochs", "4", "--quiet"]
    process = subprocess.Popen(
        [*AEKERAS, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first_checkpoint = tmp_path / "runs/dense/checkpoints/epoch-001.keras"
    deadline = time.time() + 240
    while not first_checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert (tmp_path / "runs/dense/backup").is_dir()
    assert not (tmp_path / "saved_models/dense/1").exists()

    resumed = run(args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # The resumed process ran only the epochs the killed one had not finished.
    assert "Epoch 1/4" not in resumed.stdout and "Epoch 4/4" in resumed.stdout
    history = read_history(tmp_path / "runs/dense/history.csv")
    assert history["epoch"] == [0.0, 1.0, 2.0, 3.0]
    record = json.loads((tmp_path / "saved_models/dense/1/run.json").read_text())
    assert record["history"] == history
    assert record["test_metrics"]["reconstruction_loss"] < 0.2


@pytest.mark.parametrize(
    "args, metrics",
    [
        (["conv", "--latent-dim", "2"], {"loss", "reconstruction_loss", "mse_01"}),
        (["denoising", "--noise", "gaussian", "--noise-level", "0.3"], {"loss", "reconstruction_loss", "clean_reconstruction_loss", "mse_01"}),
        (["contractive"], {"loss", "reconstruction_loss", "contractive_loss", "mse_01"}),
        (["vae", "--binarize", "--nll-samples", "3"], {"loss", "reconstruction_loss", "kl_loss", "mse_01", "nll", "neg_elbo"}),
    ],
)
def test_every_model_trains_and_exports(tmp_path, args, metrics):
    result = run(["train", *args, "--epochs", "1", "--limit", "512", "--quiet"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    version = tmp_path / "saved_models" / args[0] / "1"
    record = json.loads((version / "run.json").read_text())
    assert set(record["test_metrics"]) == metrics
    assert (version / "saved_model.pb").is_file()


def test_model_arguments_out_of_range_exit_2(tmp_path):
    result = run(["train", "denoising", "--noise-level", "1.5"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "noise_level for dropout must be in [0, 1), got 1.5" in stderr_line(result)
    assert list(tmp_path.iterdir()) == []
