"""Named runs, served contracts, stale backups, interrupts and NaN stops: real processes and signals."""

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from aekeras.staging import PARTIAL_PREFIX
from aekeras.tflite import Runner
from aekeras.training.resume import completed_epochs

AEKERAS = [sys.executable, "-m", "aekeras"]


def run(args, cwd, timeout=600):
    return subprocess.run([*AEKERAS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def one_line(result):
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("aekeras: "), result.stderr
    return result.stderr.strip()


def test_a_named_run_has_its_own_folder_and_served_name(tmp_path):
    result = run(
        ["train", "dense", "--name", "quick-try", "--epochs", "1", "--limit", "256", "--quiet"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs/quick-try/model.keras").is_file()
    assert (tmp_path / "saved_models/quick-try/1/saved_model.pb").is_file()
    assert not (tmp_path / "runs/dense").exists() and not (tmp_path / "saved_models/dense").exists()
    assert 'name: "quick-try"' in (tmp_path / "saved_models/models.config").read_text()
    bad = run(["train", "dense", "--name", "../elsewhere"], tmp_path)
    assert bad.returncode == 2 and "model name '../elsewhere' must be letters" in one_line(bad)


def test_a_served_name_keeps_its_contract(tmp_path):
    first = [
        "train",
        "vae",
        "--latent-dim",
        "4",
        "--epochs",
        "1",
        "--limit",
        "256",
        "--nll-samples",
        "0",
        "--quiet",
    ]
    assert run(first, tmp_path).returncode == 0
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    changed = run([*first[:3], "2", *first[4:]], tmp_path)
    assert changed.returncode == 2
    line = one_line(changed)
    assert "saved_models/vae/1 serves other signatures than this model" in line
    assert "decode input latent: float32 [batch, 4] -> latent: float32 [batch, 2]" in line
    assert "encode output z_mean: float32 [batch, 4] -> z_mean: float32 [batch, 2]" in line
    assert "publish it under a new --name, or pass --allow-contract-change" in line
    # Refused before training: nothing was written.
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before

    # The same contract publishes; so does a changed one, when asked to.
    shutil.copy(tmp_path / "runs/vae/model.keras", tmp_path / "latent4.keras")
    assert run(["export", "latent4.keras", "--name", "vae"], tmp_path).returncode == 0
    allowed = run([*first[:3], "2", *first[4:], "--allow-contract-change"], tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert sorted(p.name for p in (tmp_path / "saved_models/vae").iterdir()) == ["1", "2", "3"]
    # aekeras export keeps the contract too.
    back = run(["export", "latent4.keras", "--name", "vae"], tmp_path)
    assert back.returncode == 2
    assert "decode input latent: float32 [batch, 2] -> latent: float32 [batch, 4]" in one_line(back)
    assert sorted(p.name for p in (tmp_path / "saved_models/vae").iterdir()) == ["1", "2", "3"]


def _started(args, cwd, ctrl_c=signal.SIG_DFL):
    """The command, running with its output piped, SIGHUP's default action and SIGINT's (or `ctrl_c`)."""

    def as_on_a_terminal():
        # A shell that starts the test suite in the background ignores
        # SIGINT, `nohup` SIGHUP, and children inherit that.
        signal.signal(signal.SIGINT, ctrl_c)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    return subprocess.Popen(
        [*AEKERAS, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_on_a_terminal,
    )


def interrupt_once_written(args, cwd, written, signal_number=signal.SIGINT, ctrl_c=signal.SIG_DFL):
    """Starts a command, sends it a signal (SIGINT) once `written` exists; returns `(status, stdout, stderr)`."""
    process = _started(args, cwd, ctrl_c)
    deadline = time.time() + 240
    while not written.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def interrupt_once_printed(args, cwd, text):
    """Starts a command, sends it SIGINT once a line of its output holds `text`; returns `(status, stderr)`.

    For a step that prints as it goes: unlike a file's appearance, its own
    output says the step is under way.
    """
    process = _started(args, cwd)
    for line in process.stdout:
        if text in line:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def interrupt_after_first_backup(args, cwd, signal_number=signal.SIGINT):
    """Starts a training, sends a signal (SIGINT) once an epoch is backed up; returns the finished process."""
    backed_up = cwd / "runs/dense/backup/training_metadata.json"
    return interrupt_once_written(args, cwd, backed_up, signal_number)


def test_a_second_run_of_the_same_name_is_refused_while_the_first_trains(tmp_path):
    """It used to resume the first's live backup, and both published, with their history mixed."""
    args = ["train", "dense", "--epochs", "1000", "--limit", "4096", "--quiet"]
    first = _started(args, tmp_path)
    backed_up = tmp_path / "runs/dense/backup/training_metadata.json"
    deadline = time.time() + 240
    while not backed_up.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    second = run(args, tmp_path)
    assert first.poll() is None, "the first run ended before the second was refused"
    first.send_signal(signal.SIGINT)
    _, first_stderr = first.communicate(timeout=120)
    assert second.returncode == 2
    assert one_line(second) == (
        "aekeras: error: runs/dense is in use: another run of the same name is training there; let it "
        "finish (or stop it), or pass another --name"
    )
    assert first.returncode == 130 and "runs/dense keeps epoch" in first_stderr
    epochs = [
        line.split(",")[0] for line in (tmp_path / "runs/dense/history.csv").read_text().splitlines()[1:]
    ]
    assert epochs and epochs == [str(i) for i in range(len(epochs))]  # one run's rows, each epoch once
    assert not (tmp_path / "saved_models").exists()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_supervisors_stop_or_a_closed_terminal_ends_a_run_as_ctrl_c_does(tmp_path, stop):
    """It ended the process with no word, and left an export's staging folder."""
    args = ["train", "dense", "--epochs", "5", "--limit", "6144", "--quiet"]
    status, _, stderr = interrupt_after_first_backup(args, tmp_path, stop)
    assert status == 130, stderr
    assert re.fullmatch(
        r"aekeras: interrupted; runs/dense keeps epoch \d of 5, and `aekeras train .*` resumes after it\n",
        stderr,
    )
    resumed = run(args, tmp_path)
    assert resumed.returncode == 0 and "resuming runs/dense after epoch" in resumed.stdout, resumed.stderr


def test_a_background_jobs_sigterm_ends_it_as_ctrl_c_does(tmp_path):
    """A script's `aekeras train ... &` ignores SIGINT; SIGTERM killed it with no word (exit 143).

    Killed so after publishing, it left the version out of models.config
    and a rerun published the same model again.
    """
    args = ["train", "dense", "--epochs", "2", "--limit", "2048", "--quiet"]
    published = tmp_path / "saved_models/dense/1"
    status, stdout, stderr = interrupt_once_written(
        args, tmp_path, published, signal.SIGTERM, ctrl_c=signal.SIG_IGN
    )
    assert status == 0 and stderr == "", stderr  # published: the command finished its records
    assert "SavedModel: saved_models/dense/1" in stdout
    assert 'name: "dense"' in (tmp_path / "saved_models/models.config").read_text()
    assert not (tmp_path / "runs/dense/backup").exists()

    shutil.rmtree(tmp_path / "runs")
    longer = ["train", "dense", "--epochs", "5", "--limit", "6144", "--quiet"]
    backed_up = tmp_path / "runs/dense/backup/training_metadata.json"
    status, _, stderr = interrupt_once_written(
        longer, tmp_path, backed_up, signal.SIGTERM, ctrl_c=signal.SIG_IGN
    )
    assert status == 130, stderr
    assert re.fullmatch(
        r"aekeras: interrupted; runs/dense keeps epoch \d of 5, and `aekeras train .*` resumes after it\n",
        stderr,
    )


def test_ctrl_c_says_what_was_kept_and_a_changed_rerun_is_refused(tmp_path):
    args = ["train", "dense", "--epochs", "5", "--limit", "6144", "--quiet"]
    status, _, stderr = interrupt_after_first_backup(args, tmp_path)
    assert status == 130, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    kept = re.fullmatch(
        r"aekeras: interrupted; runs/dense keeps epoch (\d) of 5, and `aekeras train dense --epochs 5 --limit 6144 "
        r"--quiet` resumes after it\n",
        stderr,
    )
    assert kept, stderr
    # Nothing half-written: no partial file is left.
    assert not list((tmp_path / "runs/dense").rglob(f"{PARTIAL_PREFIX}*"))
    assert not (tmp_path / "saved_models").exists()

    other = run(
        ["train", "dense", "--latent-dim", "8", "--epochs", "5", "--limit", "6144", "--quiet"], tmp_path
    )
    assert other.returncode == 2
    line = one_line(other)
    assert (
        "runs/dense holds the backup of an interrupted run with other settings (options.latent_dim 30 -> 8)"
        in line
    )
    assert "rerun with its settings to resume it, or pass --restart" in line

    first_seconds = json.loads((tmp_path / "runs/dense/backup/run_state.json").read_text())["seconds"]
    started = time.monotonic()
    resumed = run(args, tmp_path)
    resumed_wall = time.monotonic() - started
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming runs/dense after epoch {kept.group(1)} of 5" in resumed.stdout
    record = json.loads((tmp_path / "saved_models/dense/1/run.json").read_text())
    assert record["resumes"] == 1 and record["history"]["epoch"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    # Training time over both attempts: the first's, and less than this whole process took.
    assert first_seconds > 0 and first_seconds < record["train_seconds"] < first_seconds + resumed_wall
    assert not (tmp_path / "runs/dense/backup").exists()


def test_a_crash_shows_where_python_was_and_keeps_the_backup(tmp_path):
    # A fault inside TensorFlow's C++ ends the process with a signal, not an
    # exception: Python's stack is then all there is to report.
    args = ["train", "dense", "--epochs", "50", "--limit", "6144", "--quiet"]
    status, _, stderr = interrupt_after_first_backup(args, tmp_path, signal.SIGSEGV)
    assert status == -signal.SIGSEGV, stderr
    assert "Fatal Python error: Segmentation fault" in stderr
    assert re.search(r'File ".*aekeras/cli/__init__\.py", line \d+ in main', stderr), stderr
    # What was saved stays: the backup of the epochs done, for a rerun to resume.
    assert completed_epochs(tmp_path / "runs/dense/backup") >= 1
    assert not (tmp_path / "saved_models").exists()


def test_restart_discards_a_stale_backup(tmp_path):
    args = ["train", "dense", "--epochs", "3", "--limit", "6144", "--quiet"]
    status, _, _ = interrupt_after_first_backup(args, tmp_path)
    assert status == 130
    restarted = run(
        ["train", "dense", "--latent-dim", "8", "--epochs", "1", "--limit", "512", "--quiet", "--restart"],
        tmp_path,
    )
    assert restarted.returncode == 0, restarted.stderr
    assert "resuming" not in restarted.stdout
    record = json.loads((tmp_path / "saved_models/dense/1/run.json").read_text())
    assert record["resumes"] == 0 and record["model_config"]["latent_dim"] == 8


def test_a_nan_stop_names_the_learning_rate_and_promises_nothing(tmp_path):
    result = run(
        ["train", "vae", "--learning-rate", "1000", "--epochs", "2", "--limit", "2048", "--quiet"], tmp_path
    )
    assert result.returncode == 1
    line = one_line(result)
    assert re.match(r"aekeras: error: training stopped: the loss became nan at epoch 1, batch \d+", line), (
        line
    )
    assert (
        "the learning rate 1000 is likely too high (Adam's usual is 0.001): rerun with a lower --learning-rate"
        in line
    )
    assert "same command" not in line


def test_ctrl_c_while_a_conversion_is_checked_says_its_files_are_kept(tmp_path):
    trained = run(["train", "dense", "--epochs", "1", "--limit", "512", "--quiet"], tmp_path)
    assert trained.returncode == 0, trained.stderr
    version = tmp_path / "saved_models/dense/1"
    converted = version / "dense-none.tflite"
    # Once the check prints its progress it is under way (a file's appearance
    # came a moment before the check began, and a signal there was not one
    # during the check).
    checking = "against the SavedModel (batches)"
    status, stderr = interrupt_once_printed(["tflite", "saved_models/dense/1"], tmp_path, checking)
    assert status == 130, "the check ended before it could be interrupted: " + stderr
    assert stderr == (
        "aekeras: interrupted while checking saved_models/dense/1/dense-none.tflite; complete and kept, but "
        "not checked (`aekeras tflite saved_models/dense/1` converts and checks again)\n"
    )
    assert len(Runner(converted).signatures) == 3  # whole: every signature loads

    status, stderr = interrupt_once_printed(["onnx", "saved_models/dense/1"], tmp_path, checking)
    assert status == 130, "the check ended before it could be interrupted: " + stderr
    assert re.fullmatch(
        r"aekeras: interrupted while checking saved_models/dense/1/onnx/decode\.onnx, "
        r"saved_models/dense/1/onnx/encode\.onnx, saved_models/dense/1/onnx/serving_default\.onnx; complete "
        r"and kept, but not checked \(`aekeras onnx saved_models/dense/1` converts and checks again\)\n",
        stderr,
    ), stderr
    assert sorted(p.name for p in (version / "onnx").iterdir()) == [
        "decode.onnx",
        "encode.onnx",
        "serving_default.onnx",
    ]


def test_ctrl_c_while_a_model_is_exported_publishes_nothing(tmp_path):
    trained = run(
        ["train", "dense", "--epochs", "1", "--limit", "512", "--quiet", "--name", "first"], tmp_path
    )
    assert trained.returncode == 0, trained.stderr
    # The model's folder is made before its signatures are traced, which takes seconds.
    model_dir = tmp_path / "saved_models/exported"
    status, _, stderr = interrupt_once_written(
        ["export", "runs/first", "--name", "exported"], tmp_path, model_dir
    )
    assert status == 130, "the export ended before it could be interrupted: " + stderr
    assert stderr == "aekeras: interrupted; nothing was left half-written\n"
    assert not model_dir.exists()  # made for the export, and removed again, empty


def test_a_closed_output_pipe_stops_training_quietly_and_the_run_resumes(tmp_path):
    args = ["train", "dense", "--epochs", "40", "--limit", "2048", "--quiet"]
    process = subprocess.Popen(
        [*AEKERAS, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first_epoch = process.stdout.readline()  # then the reader goes away, as `| head -1` does
    process.stdout.close()
    stderr = process.stderr.read()
    process.wait(timeout=300)
    assert first_epoch == "Epoch 1/40\n"
    assert process.returncode == 141, stderr
    assert stderr == (
        "aekeras: stopped: its output was closed (the reader of a pipe ended); what was saved is kept, and "
        "the same command resumes a training run\n"
    )
    kept = completed_epochs(tmp_path / "runs/dense/backup")
    assert 1 <= kept < 40
    resumed = run(args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming runs/dense after epoch {kept} of 40" in resumed.stdout


def test_a_file_past_the_size_limit_is_one_line_and_the_run_resumes(tmp_path):
    """`ulimit -f`: Python's EFBIG ended a run in a traceback."""
    import resource

    def limited():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, resource.RLIM_INFINITY))  # below a checkpoint

    args = ["train", "dense", "--epochs", "2", "--limit", "512", "--quiet"]
    result = subprocess.run(
        [*AEKERAS, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, preexec_fn=limited
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("aekeras: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "grew past the largest file this process may write (ulimit -f)" in result.stderr
    again = run(args, tmp_path)
    assert again.returncode == 0, again.stderr
