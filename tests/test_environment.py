"""The `aekeras` command in the process environments users run it in: closed streams, encodings, limits."""

import errno
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from aekeras import cli

AEKERAS = [sys.executable, "-m", "aekeras"]
# One quick epoch on 64 small images: the environment is what is tested.
TRAIN = ["train", "dense", "--epochs", "1", "--latent-dim", "4", "--data", "digits.npz"]


@pytest.fixture
def digits(tmp_path):
    """A folder holding `digits.npz`: scikit-learn's first 64 8x8 digits, as 8-bit images."""
    images = load_digits().images[:64] * (255 / 16)
    np.savez(tmp_path / "digits.npz", images=images.round().astype(np.uint8))
    return tmp_path


def test_closed_stdout_and_stderr_leave_the_run_whole(digits):
    """`>&- 2>&-`: stdout None ended in an AttributeError, and without stderr in a silent status 1."""

    def closed():
        os.close(1)
        os.close(2)

    result = subprocess.run(
        [*AEKERAS, *TRAIN], cwd=digits, stdin=subprocess.DEVNULL, preexec_fn=closed, timeout=300
    )
    assert result.returncode == 0
    assert (digits / "saved_models/dense/1/saved_model.pb").is_file()
    assert "dense" in (digits / "saved_models/models.config").read_text()


def test_paths_the_output_encoding_cannot_spell_are_escaped(digits):
    """PYTHONIOENCODING=ascii: a non-ASCII --out ended in a UnicodeEncodeError after publishing."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    result = subprocess.run(
        [*AEKERAS, *TRAIN, "--out", "modèles"], cwd=digits, capture_output=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"SavedModel: mod\\xe8les/dense/1\n" in result.stdout
    assert "dense" in (digits / "modèles/models.config").read_text()


def test_warnings_raised_as_errors_are_one_line(tmp_path, monkeypatch, capsys):
    """PYTHONWARNINGS=error: a library's DeprecationWarning (NumPy's, as Keras saved) ended a command in a traceback."""
    from aekeras.cli import report

    def warns(args):
        warnings.warn(
            "`__array__` implementation doesn't accept a copy keyword", DeprecationWarning, stacklevel=2
        )

    def raises_one_on_purpose(args):
        raise UserWarning("a plugin's own refusal")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "run", warns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callers = list(warnings.filters)
        assert cli.main(["report", "--out", "reports"]) == 1
        assert warnings.filters == callers  # quieted for the failed command's finalizers only
    assert capsys.readouterr().err == (
        "aekeras: error: DeprecationWarning raised as an error by -W error (PYTHONWARNINGS): `__array__` "
        "implementation doesn't accept a copy keyword; run the command where warnings are shown, not raised\n"
    )
    # Where no filter raises its kind, a warning raised as an exception is not blamed on -W error.
    monkeypatch.setattr(report, "run", raises_one_on_purpose)
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(UserWarning, match="a plugin's own refusal"):
            cli.main(["report", "--out", "reports"])


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (  # TensorFlow's words for EFBIG under `ulimit -f`, as a SavedModel's file grows past it
            tf.errors.OutOfRangeError(None, None, "out/pc/.staging-1/saved_model.pb.tmp1; File too large"),
            "aekeras: error: out/pc/.staging-1/saved_model.pb.tmp1 grew past the largest file this process "
            "may write (ulimit -f); what was saved before is kept. Raise the limit, and the same command "
            "starts again\n",
        ),
        (  # `ulimit -v` below what TensorFlow's libraries map as they load
            ImportError("libtensorflow_cc.so.2: failed to map segment from shared object"),
            "aekeras: error: too little memory to load TensorFlow (libtensorflow_cc.so.2: failed to map "
            "segment from shared object); raise the limit (ulimit -v)\n",
        ),
        (
            OSError(errno.EMFILE, "Too many open files", "/tmp/x/assets"),
            "too many open files (this process may open ",
        ),
        (  # TensorFlow's words for it, as it loads a SavedModel
            tf.errors.ResourceExhaustedError(None, None, "dense/1/saved_model.pb; Too many open files"),
            "too many open files (this process may open ",
        ),
        (  # no longer called damage (`errors.not_the_files_fault`): the system's refusal, in TensorFlow's words
            tf.errors.PermissionDeniedError(
                None, None, "dense/1/variables/variables.index; Permission denied"
            ),
            "aekeras: error: permission denied: dense/1/variables/variables.index; what was saved before is kept\n",
        ),
        (
            tf.errors.NotFoundError(None, None, "Op type not registered 'Foo' in binary running on host"),
            "; the model was made with a newer TensorFlow than this one: upgrade it\n",
        ),
    ],
)
def test_file_limits_end_the_command_in_one_line(error, line, tmp_path, monkeypatch, capsys):
    """`ulimit -f` in TensorFlow's writer, `ulimit -v` at its load and `ulimit -n` each ended in a traceback."""
    from aekeras.cli import report

    def fails(args):
        raise error

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "run", fails)
    assert cli.main(["report", "--out", "reports"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("aekeras: error: ")
    assert line in stderr


def test_a_hangup_under_nohup_leaves_the_run_to_finish(tmp_path):
    """`nohup aekeras train ...`: SIGHUP, which ends a run as Ctrl-C does, stays ignored there."""
    args = ["train", "dense", "--epochs", "3", "--limit", "2048", "--quiet"]
    process = subprocess.Popen(
        [*AEKERAS, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    backed_up = tmp_path / "runs/dense/backup/training_metadata.json"
    deadline = time.time() + 240
    while not backed_up.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0 and stderr == "", stderr
    assert (tmp_path / "saved_models/dense/1/saved_model.pb").is_file()
