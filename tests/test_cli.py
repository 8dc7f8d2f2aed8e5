"""The `aekeras` command, run as a user runs it: in a real subprocess."""

import faulthandler
import functools
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.tools import flatbuffer_utils

from aekeras import cli, data
from aekeras.models import ConvAutoencoder, DenseAutoencoder, ModelFileError, load_model, shards
from aekeras.training import read_history
from aekeras.training.runner import SMALL_GRAPH_NODES

AEKERAS = [sys.executable, "-m", "aekeras"]


def run(args, cwd, timeout=300, env=None):
    return subprocess.run(
        [*AEKERAS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def stderr_line(result):
    """The one line a failing command prints: nothing else reaches stderr."""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("aekeras: error: "), result.stderr
    return result.stderr


def test_train_then_export_end_to_end(tmp_path):
    # Keras's caps for trying one's own scripts quickly cut this to one epoch of two batches.
    env = {**os.environ, "KERAS_MAX_EPOCHS": "1", "KERAS_MAX_STEPS_PER_EPOCH": "2"}
    args = ["train", "dense", "--epochs", "2", "--limit", "1024", "--keep-checkpoints", "1"]
    result = run(args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "runs/dense/checkpoints").iterdir()] == ["epoch-002.keras"]
    # Off a terminal, one line per epoch: no bar redrawn with backspaces.
    assert len(re.findall(r"^4/4 - .*loss: ", result.stdout, re.M)) == 2, result.stdout
    assert "\b" not in result.stdout
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

    int8 = ["tflite", "saved_models/dense/2", "--quantize", "int8", "--calibration-images", "50"]
    converted = run([*int8, "--data", "mnist"], cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "saved_models/dense/2/dense-int8.tflite").is_file()
    # No note of other data (it is the data it trained on); one of the few calibration images.
    notes = [line for line in converted.stdout.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: 50 images may not span the activations other images reach, which int8 then clips; 100 or "
        "more are usual"
    ]
    litert, saved = map(float, re.search(r"LiteRT ([\d.]+), SavedModel ([\d.]+)", converted.stdout).groups())
    assert saved == pytest.approx(record["test_metrics"]["mse_01"], rel=1e-4) and litert <= 1.1 * saved

    converted = run(
        ["tflite", "saved_models/dense/2", "--quantize", "int16x8", "--calibration-images", "100"],
        cwd=tmp_path,
    )
    assert converted.returncode == 0, converted.stderr
    assert "calibrating on 100 training images of mnist" in converted.stdout
    differences = dict(
        re.findall(r"(serving_default \w+|encode \w+|decode \w+) ([\d.e+-]+)", converted.stdout)
    )
    assert set(differences) == {
        "serving_default reconstruction",
        "serving_default score",
        "encode latent",
        "decode images",
    }
    assert all(float(value) < 0.05 for value in differences.values()), converted.stdout
    assert "note: this export's kernels are not on the int8 grid" in converted.stdout

    # Other data than the run's is used, and said so.
    images, labels = data.load_arrays("mnist", "test")
    np.savez(tmp_path / "digits.npz", images=images[:300], labels=labels[:300])
    converted = run(["onnx", "saved_models/dense/2", "--data", "digits.npz"], cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    note = "note: saved_models/dense/2's run trained on mnist; the images used here are digits.npz's\n"
    assert converted.stdout.startswith(note), converted.stdout

    exported = run(["export", "runs/dense", "--name", "dense8", "--int8-weights"], cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "SavedModel: saved_models/dense8/1 (kernels on the int8 grid)" in exported.stdout
    assert json.loads((tmp_path / "saved_models/dense8/1/run.json").read_text()) == {
        **record,
        "int8_weights": True,
    }
    int16x8 = ["tflite", "saved_models/dense8/1", "--quantize", "int16x8", "--calibration-images", "100"]
    converted = run([*int16x8, "--strip-names"], cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    snapped = re.findall(r"(?:serving_default|encode|decode) \w+ ([\d.e+-]+)", converted.stdout)
    assert len(snapped) == 4 and all(float(value) < 1e-2 for value in snapped), converted.stdout
    assert "note:" not in converted.stdout
    # Named: the signatures' inputs and outputs, no inner tensor.
    model = flatbuffer_utils.read_model(str(tmp_path / "saved_models/dense8/1/dense8-int16x8.tflite"))
    named = [t.name for subgraph in model.subgraphs for t in subgraph.tensors if t.name]
    ends = sum(len(s.inputs) + len(s.outputs) for s in model.signatureDefs)
    assert len(named) == ends == 7, named


@pytest.mark.parametrize(
    "run_json, note",
    [
        (None, False),
        ("{not json", False),  # --data is the way around a broken run.json
        ('{"data": {"options": {}}}', False),
        ('{"data": {"source": "fashion_mnist", "options": {}}}', True),
        ('{"data": {"source": "HOME/digits.npz", "options": {}}}', False),  # the same file as ~/digits.npz
    ],
)
def test_data_given_for_an_export_is_read_whatever_its_run_json_says(tmp_path, capsys, run_json, note):
    from aekeras.cli.common import export_data

    version = tmp_path / "saved_models" / "dense" / "1"
    version.mkdir(parents=True)
    if run_json is not None:
        (version / "run.json").write_text(run_json.replace("HOME", str(Path.home())))
    data_arg = "~/digits.npz" if "npz" in (run_json or "") else "mnist"
    args = cli.build_parser().parse_args(["tflite", str(version), "--data", data_arg])
    source, options = export_data(args, version, (28, 28, 1))
    assert (source, options["image_size"], options["channels"]) == (data_arg, (28, 28), 1)
    assert ("note: " in capsys.readouterr().out) == note


def test_an_export_of_flat_vectors_is_refused_by_the_data_options(tmp_path):
    from aekeras.cli.common import export_data

    version = tmp_path / "saved_models" / "flat" / "1"
    version.mkdir(parents=True)
    args = cli.build_parser().parse_args(["tflite", str(version), "--data", "mnist"])
    with pytest.raises(
        cli.UsageError, match=r"1: takes flat vectors of 784 values, and the command line reads images"
    ):
        export_data(args, version, (784,))


def test_console_script_and_help(tmp_path):
    script = Path(sys.executable).parent / "aekeras"
    result = subprocess.run([str(script), "train", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--latent-dim" in result.stdout


def test_the_command_runs_on_tensorflow_with_keras_defaults_whatever_the_user_set(tmp_path):
    """A KERAS_BACKEND for the user's own Keras programs (jax) ended the command in a traceback from
    Keras's import; their keras.json's floatx "float64" refused every model (in a line about
    keras.config.set_dtype_policy), and its "channels_first" every conv model's load."""
    model = ConvAutoencoder(filters=(4, 4, 4), latent_dim=4)
    model.save(tmp_path / "conv.keras")
    home = tmp_path / "keras_home"
    home.mkdir()
    settings = {"backend": "jax", "floatx": "float64", "epsilon": 0.1, "image_data_format": "channels_first"}
    (home / "keras.json").write_text(json.dumps(settings))
    env = {**os.environ, "KERAS_BACKEND": "jax", "KERAS_HOME": str(home)}
    result = run(["export", "conv.keras", "--name", "conv"], cwd=tmp_path, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    images = next(iter(data.load("mnist", "test", limit=16, batch_size=16))).numpy()
    served = tf.saved_model.load(str(tmp_path / "saved_models/conv/1")).signatures["serving_default"]
    np.testing.assert_allclose(
        served(images=tf.constant(images))["reconstruction"], model.predict(images, verbose=0), atol=1e-6
    )


def test_version_is_the_installed_packages(tmp_path):
    result = run(["--version"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"aekeras {metadata.version('aekeras')}\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "gan"], "argument model: invalid choice: 'gan'"),
        (["fly"], "invalid choice: 'fly'"),
        (["train", "dense", "--epochs", "-3"], "-3 is not a positive integer"),
        (["train", "dense", "--epochs", "0"], "0 is not a positive integer"),
        (["train", "dense", "--batch-size", "many"], "'many' is not an integer"),
        (["train", "dense", "--latent-dim", "0"], "0 is not a positive integer"),
        (
            ["train", "dense", "--noise", "gaussian"],
            "--noise does not apply to the dense model (only to denoising)",
        ),
        (["train", "dense", "--strategy", "multi_worker"], "strategy 'multi_worker' needs $TF_CONFIG"),
        (["train", "dense", "--learning-rate=-1e-3"], "-1e-3 is not a positive number"),
        (["train", "dense", "--data-dir", "no/such/folder"], "no/such/folder: data folder does not exist"),
        (["report", "--data-dir", "no/such/folder"], "no/such/folder: data folder does not exist"),
        (["train", "dense", "--out", "/proc/aekeras"], "--out /proc/aekeras: /proc is not writable"),
        (["train", "dense", "--run-dir", "a_file/runs"], "a_file is not a folder"),
        # The run's own folders: these failed after training, and a long name in the TFLite file's name.
        (["train", "dense", "--out", ".", "--name", "a_file"], "a_file is not a folder"),
        (["train", "dense", "--name", "m" * 101], "model name of 101 characters is too long: at most 100"),
        (["train", "dense", "--out", "o" * 5000], "File name too long"),
        # Within the system's limit, yet not with what goes below it: that failed at the export.
        (["train", "dense", "--out", "/".join(["o" * 250] * 15 + ["o" * 100])], "leaves too little room"),
        (["export", "nothing.keras", "--name", "x"], "nothing.keras: expected a .keras file"),
        (["tflite", "saved_models/dense/9"], "saved_models/dense/9: no saved_model.pb"),
        (["onnx", "saved_models/dense/9"], "saved_models/dense/9: no saved_model.pb"),
        (["tflite", ".", "--quantize", "int4"], "argument --quantize: invalid choice: 'int4'"),
        (["train", "dense", "--data", "no/such.npz"], "no/such.npz: no such file or folder"),
        (["report", "--source", "no/such"], "no/such: no such file or folder"),
        (["export", "a_file", "--name", "x"], "a_file: expected a .keras file or a run folder"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, args, message):
    """Each refused before TensorFlow loads: in a fraction of a second, where the settings, folders and
    files refused after its import took 8-10 s on this 2-core machine."""
    (tmp_path / "a_file").write_text("")
    result = run(args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert message in stderr_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    assert not loads_tensorflow(args, tmp_path)


def loads_tensorflow(args, cwd, env=None):
    """Whether `aekeras ARGS`, run as `cli.main` in a fresh process, loaded TensorFlow."""
    probe = "import sys; from aekeras import cli; cli.main(sys.argv[1:]); print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.stdout in ("True\n", "False\n"), result.stderr
    return result.stdout == "True\n"


def test_a_command_loads_tensorflow_without_what_keras_imports_only_if_installed():
    """scikit-learn and matplotlib stay out of TensorFlow's import (1.6 s of it), and load later as usual."""
    probe = (
        "import sys; from aekeras.cli.common import start_tensorflow; start_tensorflow(False); "
        "early = sorted({'sklearn', 'matplotlib', 'tensorflow'} & set(sys.modules)); "
        "from sklearn.decomposition import PCA; import matplotlib.pyplot; print(early, PCA.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout == "['tensorflow'] PCA\n", result.stderr


def test_empty_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    args = ["train", "dense", "--data-dir", "empty"]
    result = run(args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "empty: no train-images-idx3-ubyte or train-images-idx3-ubyte.gz" in stderr_line(result)
    assert not loads_tensorflow(args, tmp_path)


@pytest.mark.parametrize("args", [["train", "dense"], ["report"], ["tflite", ".", "--data", "mnist"]])
def test_an_aekeras_data_dir_that_is_no_folder_is_refused_before_tensorflow_loads(tmp_path, args):
    (tmp_path / "saved_model.pb").write_bytes(b"")  # an export's folder, for tflite
    env = {**os.environ, "AEKERAS_DATA_DIR": str(tmp_path / "gone")}
    result = run(args, cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 2
    assert f"$AEKERAS_DATA_DIR={tmp_path / 'gone'}: data folder does not exist" in stderr_line(result)
    assert not loads_tensorflow(args, tmp_path, env)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model.pb"]


def test_called_in_process_with_stderr_redirected_it_still_answers_in_one_line(monkeypatch):
    # As in a notebook: sys.stderr without a file descriptor, and no fault
    # handler yet (pytest's own is put back afterwards).
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    was_enabled = faulthandler.is_enabled()
    faulthandler.disable()
    try:
        assert cli.main(["train"]) == 2
        assert faulthandler.is_enabled()
    finally:
        faulthandler.disable()
        if was_enabled:
            faulthandler.enable(file=sys.__stderr__)
    assert sys.stderr.getvalue() == "aekeras: error: the following arguments are required: model\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "dense", "--batch-size", "0"], "argument --batch-size: 0 is not a positive integer"),
        (["train", "dense", "--latent-dim", "-4"], "argument --latent-dim: -4 is not a positive integer"),
        (["train", "dense", "--limit", "0"], "argument --limit: 0 is not a positive integer"),
        (["train", "dense", "--epochs", "2.5"], "argument --epochs: '2.5' is not an integer"),
        (["train", "dense", "--strategy", "tpu"], "argument --strategy: invalid choice: 'tpu'"),
        (["train", "vae", "--nll-samples", "-1"], "argument --nll-samples: -1 is less than 0"),
        (["train", "dense", "--keep-checkpoints", "-1"], "argument --keep-checkpoints: -1 is less than 0"),
        (["train", "conv", "--architecture", "conv"], "--architecture does not apply to the conv model"),
        (["train", "vae", "--tied-weights"], "--tied-weights does not apply to the vae model"),
        (
            ["train", "contractive", "--binarize"],
            "--binarize does not apply to the contractive model (only to vae, iwae, cvae)",
        ),
        (
            ["train", "dense", "--contraction-weight", "1"],
            "--contraction-weight does not apply to the dense model",
        ),
        (
            ["train", "denoising", "--architecture", "conv", "--tied-weights"],
            "tied_weights conflicts with architecture 'conv'",
        ),
        (
            ["train", "dense", "--data-dir", "a_file"],
            "a_file: a file, not a data folder (expected the folder holding the IDX files)",
        ),
        (["train", "dense", "--out", "a_file"], "--out {tmp}/a_file: {tmp}/a_file is not a folder"),
        (["export", "runs/dense", "--name", "x"], "runs/dense: expected a .keras file or a run folder"),
        (["export"], "the following arguments are required: source, --name"),
        (["train", "dense", "--seed", "-1"], "argument --seed: -1 is less than 0"),
        (["train", "dense", "--name", ""], "model name '' must be letters, digits, '-' or '_'"),
        (["report", "--seed", "4294967296"], "argument --seed: 4294967296 is more than 4294967295"),
        (
            ["train", "dense", "--learning-rate", "inf"],
            "argument --learning-rate: inf is not a positive number",
        ),
        (["train", "dense", "--test-fraction", "1"], "argument --test-fraction: 1 is not between 0 and 1"),
        (["train", "dense", "--image-size", "0x28"], "argument --image-size: '0x28' is not a size"),
        (["train"], "the following arguments are required: model"),
        ([], "the following arguments are required: command"),
        (
            ["tflite", "a_file", "--data", "mnist", "--dataset", "fashion_mnist"],
            "argument --dataset: not allowed with argument --data",
        ),
    ],
)
def test_more_bad_arguments_exit_2_before_anything_is_written(tmp_path, monkeypatch, capsys, args, message):
    # In-process, to keep the many cases quick; the test above runs the command.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    assert cli.main(args) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("aekeras: error: ")
    assert message.format(tmp=tmp_path) in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_the_bounds_of_the_arguments_are_accepted():
    parse = cli.build_parser().parse_args
    assert parse(["train", "dense", "--seed", "4294967295"]).seed == 4294967295
    assert parse(["train", "dense", "--image-size", "1x2"]).image_size == (1, 2)
    assert parse(["train", "dense", "--keep-checkpoints", "0"]).keep_checkpoints == 0


def test_a_report_whose_cache_cannot_be_written_exits_2_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "cache").write_text("")
    assert cli.main(["report", "--out", "reports", "--quick"]) == 2
    stderr = capsys.readouterr().err
    assert (
        stderr
        == f"aekeras: error: --out {tmp_path}/reports/cache: {tmp_path}/reports/cache is not a folder\n"
    )
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["cache"]


def test_a_full_disk_or_memory_ends_the_command_in_one_line(tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    from aekeras.cli import report

    def write_to_a_full_device(args):
        with open("/dev/full", "wb") as device:  # the kernel answers ENOSPC, as a full disk does
            device.write(b"\0" * (1 << 16))
            device.flush()  # no file name in the error: Python's write does not know it

    def tensorflow_out_of_space(args):
        raise tf.errors.ResourceExhaustedError(
            None, None, "out/pc/saved_model.pb.tmp1; No space left on device"
        )

    def tensorflow_op_out_of_space(args):
        # A SavedModel's variables fail inside TensorFlow's function, which prefixes its name.
        raise tf.errors.ResourceExhaustedError(
            None,
            None,
            "{{function_node __wrapped__SaveV2_dtypes_6_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
            "out/pc/variables/variables_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space "
            "left on device [Op:SaveV2]",
        )

    monkeypatch.chdir(tmp_path)
    for run, where in (
        (write_to_a_full_device, "the output"),
        (tensorflow_out_of_space, "out/pc/saved_model.pb.tmp1"),
        (
            tensorflow_op_out_of_space,
            "out/pc/variables/variables_temp/part-00000-of-00001.data-00000-of-00001.tempstate1",
        ),
    ):
        monkeypatch.setattr(report, "run", run)
        assert cli.main(["report", "--out", "reports"]) == 1
        stderr = capsys.readouterr().err
        assert stderr.count("\n") == 1
        assert stderr.startswith(
            f"aekeras: error: no space left on the device while writing {where}; what was"
        )
        assert stderr.endswith(
            "Free some space, and the same command starts again\n"
        )  # a report; train resumes

    def out_of_memory(args):
        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[10000000000,30]"
        )

    monkeypatch.setattr(report, "run", out_of_memory)
    assert cli.main(["report", "--out", "reports"]) == 1
    stderr = capsys.readouterr().err
    assert stderr == (
        "aekeras: error: out of memory allocating shape[10000000000,30]; what was saved before is kept. Try a "
        "smaller --image-size, --batch-size or --limit\n"
    )
    with pytest.raises(ZeroDivisionError):  # anything else is not hidden
        monkeypatch.setattr(report, "run", lambda args: 1 / 0)
        cli.main(["report", "--out", "reports"])


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{not json", "$TF_CONFIG is not valid JSON"),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
            "does not name a chief or worker task of its cluster",
        ),
    ],
)
def test_bad_tf_config_exits_2(tmp_path, monkeypatch, capsys, tf_config, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert cli.main(["train", "dense", "--strategy", "multi_worker"]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def keras_file_with_config(path, source, change):
    """Copies the .keras archive `source` to `path` with its config.json changed."""
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    files["config.json"] = json.dumps(change(json.loads(files["config.json"])))
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)


def test_export_loads_in_safe_mode_and_refuses_code(tmp_path, monkeypatch, capsys):
    """A .keras file is loaded with Keras's safe mode: no lambdas, no unknown classes."""
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(tmp_path / "lambda.keras")
    DenseAutoencoder(latent_dim=4).save(tmp_path / "dense.keras")
    keras_file_with_config(
        tmp_path / "unknown.keras",
        tmp_path / "dense.keras",
        lambda c: {**c, "module": "os", "class_name": "system", "registered_name": "os>system"},
    )
    (tmp_path / "text.keras").write_text("not a zip")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(tmp_path / "sequential.keras")
    before = sorted(p.name for p in tmp_path.iterdir())
    cases = {
        "lambda.keras": "cannot load it in Keras safe mode: Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda",
        "unknown.keras": "cannot load it in Keras safe mode: Could not locate class 'system'",
        "text.keras": "not a .keras file (expected the zip archive model.save writes)",
        "sequential.keras": "holds a Sequential, not an aekeras autoencoder",
    }
    monkeypatch.chdir(tmp_path)
    for name, message in cases.items():
        assert cli.main(["export", name, "--name", "x"]) == 2
        assert capsys.readouterr().err == f"aekeras: error: {name}: {message}\n"
    assert cli.main(["export", "dense.keras", "--name", "my model"]) == 2
    assert "model name 'my model' must be letters" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # In Python, a path that is not there is said to be missing, not "not a .keras file".
    with pytest.raises(
        ModelFileError, match=r"missing\.keras: no such file \(expected a \.keras file model\.save wrote\)$"
    ):
        load_model(tmp_path / "missing.keras")


def test_killed_run_resumes_from_the_last_completed_epoch(tmp_path):
    args = ["train", "dense", "--epochs", "4", "--quiet"]
    process = subprocess.Popen(
        [*AEKERAS, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # The metadata is renamed into place last: then epoch 1's backup is whole.
        backed_up = tmp_path / "runs/dense/backup/training_metadata.json"
        deadline = time.time() + 240
        while not backed_up.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert (tmp_path / "runs/dense/backup").is_dir()
    assert not (tmp_path / "saved_models/dense").exists()

    # The same command run through, alongside the resumed run, for comparison.
    (tmp_path / "uninterrupted").mkdir()
    uninterrupted = subprocess.Popen(
        [*AEKERAS, *args],
        cwd=tmp_path / "uninterrupted",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        resumed = run(args, cwd=tmp_path)
        _, uninterrupted_stderr = uninterrupted.communicate(timeout=300)
    finally:
        uninterrupted.kill()
        uninterrupted.wait()
    assert resumed.returncode == 0, resumed.stderr
    assert uninterrupted.returncode == 0, uninterrupted_stderr
    # The resumed process ran only the epochs the killed one had not finished.
    assert "Epoch 1/4" not in resumed.stdout and "Epoch 4/4" in resumed.stdout
    history = read_history(tmp_path / "runs/dense/history.csv")
    assert history["epoch"] == [0.0, 1.0, 2.0, 3.0]
    record = json.loads((tmp_path / "saved_models/dense/1/run.json").read_text())
    assert record["history"] == history
    assert not (tmp_path / "runs/dense/backup").exists()
    # Equal quality: after resuming, epochs see other (equally random) shuffle
    # orders than in one go, so the figures differ a little. Measured: 0.2%.
    reference = json.loads((tmp_path / "uninterrupted/saved_models/dense/1/run.json").read_text())
    assert len(reference["history"]["epoch"]) == 4
    assert record["test_metrics"]["reconstruction_loss"] == pytest.approx(
        reference["test_metrics"]["reconstruction_loss"], rel=0.02
    )


@pytest.mark.parametrize(
    "args, metrics",
    [
        (["conv", "--latent-dim", "2", "--strategy", "mirrored"], {"loss", "reconstruction_loss", "mse_01"}),
        (
            ["denoising", "--noise", "gaussian", "--noise-level", "0.3"],
            {"loss", "reconstruction_loss", "clean_reconstruction_loss", "mse_01"},
        ),
        (["contractive"], {"loss", "reconstruction_loss", "contractive_loss", "mse_01"}),
        (
            ["vae", "--binarize", "--nll-samples", "3"],
            {"loss", "reconstruction_loss", "kl_loss", "mse_01", "nll", "neg_elbo"},
        ),
        (
            ["iwae", "--binarize", "--num-samples", "3", "--nll-samples", "3", "--hidden-dims", "64,32"]
            + ["--warmup-num-samples", "2", "--warmup-epochs", "1"],
            {"loss", "iwae_loss", "mse_01", "nll", "neg_elbo"},
        ),
        (
            ["vqvae", "--num-embeddings", "16", "--embedding-dim", "4"],
            {"loss", "reconstruction_loss", "vq_loss", "codebook_usage", "mse_01"},
        ),
        (
            ["cvae", "--binarize", "--nll-samples", "3", "--latent-dim", "2"],
            {"loss", "reconstruction_loss", "kl_loss", "mse_01", "nll", "neg_elbo"},
        ),
    ],
)
def test_every_model_trains_and_exports(tmp_path, args, metrics):
    result = run(["train", *args, "--epochs", "1", "--limit", "512", "--quiet"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    version = tmp_path / "saved_models" / args[0] / "1"
    record = json.loads((version / "run.json").read_text())
    assert set(record["test_metrics"]) == metrics
    assert record["settings"]["strategy"] == ("mirrored" if "mirrored" in args else "default")
    assert record["replicas"] == 1  # this machine has one CPU device and no GPU
    assert (version / "saved_model.pb").is_file()
    if "--hidden-dims" in args:
        assert record["model_config"]["hidden_dims"] == [64, 32]
    if "--warmup-epochs" in args:
        assert (record["model_config"]["warmup_num_samples"], record["model_config"]["warmup_epochs"]) == (
            2,
            1,
        )


def test_a_conversion_whose_codebook_picks_flipped_says_so_in_one_line(capsys):
    from aekeras.cli.common import print_flipped_picks
    from aekeras.signatures import Differences

    print_flipped_picks(Differences({"encode": {"latent": 1e-6}}), "ONNX", 10)
    assert capsys.readouterr().out == ""
    print_flipped_picks(Differences({"encode": {"latent": 0.0}}, 3, 0.0012), "LiteRT", 10000)
    out = capsys.readouterr().out
    assert out.startswith(
        "note: LiteRT picked another codebook vector at 0.12% of positions, in 3 of 10000 test"
    )
    assert out.count("\n") == 1


def test_a_conversions_mse_line_is_the_compared_calls_or_says_why_there_is_none(capsys):
    from aekeras.cli.common import print_reconstruction_mse
    from aekeras.signatures import Differences

    print_reconstruction_mse(Differences({}, reconstruction_mse=(0.0123456, 0.0123)), "ONNX", 10, "mnist")
    assert (
        capsys.readouterr().out
        == "test reconstruction MSE on 10 images of mnist: ONNX 0.012346, SavedModel 0.012300\n"
    )
    # A variant whose serving_default samples is left out of `max_differences`: one line, no unpacking error.
    print_reconstruction_mse(Differences({}), "LiteRT", 10, "mnist")
    assert (
        capsys.readouterr().out
        == "test reconstruction MSE: not compared, as serving_default draws random numbers\n"
    )


def test_the_conditional_vae_learns_class_folders_and_converts_with_their_labels(
    tmp_path, fashion_png_folder
):
    data = ["--data", str(fashion_png_folder)]
    args = ["train", "cvae", "--architecture", "conv", "--latent-dim", "4", "--epochs", "2", "--quiet", *data]
    result = run(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    version = tmp_path / "saved_models" / "cvae" / "1"
    record = json.loads((version / "run.json").read_text())
    assert record["image_spec"]["num_classes"] == 10 and record["model_config"]["num_classes"] == 10
    result = run(["tflite", str(version), "--quantize", "int8", *data], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    mse = re.search(r"LiteRT (\S+), SavedModel (\S+)", result.stdout)
    assert float(mse[1]) < 1.1 * float(mse[2])  # calibrated and tested on the folders' labels


def test_the_conditional_vae_refuses_unlabelled_data_in_one_line(tmp_path, rgb_crops_folder):
    result = run(
        ["train", "cvae", "--data", str(rgb_crops_folder), "--epochs", "1"], cwd=tmp_path, timeout=120
    )
    assert result.returncode == 2
    assert "ConditionalVAE needs data with class labels (MNIST, class folders" in stderr_line(result)
    assert not (tmp_path / "saved_models").exists()


def test_intra_op_threads_reach_tensorflow_from_the_command_line(tmp_path):
    args = ["train", "dense", "--epochs", "1", "--limit", "512", "--quiet"]
    result = run(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "saved_models/dense/1/run.json").read_text())
    assert record["settings"]["intra_op_threads"] is None
    assert record["environment"]["intra_op_threads"] == 1  # the lecture's dense model's own
    assert record["environment"]["grappler_min_graph_nodes"] == SMALL_GRAPH_NODES
    # The lecture's dense model trains in one shard per core by default.
    assert record["batch_shards"] == shards.default_count(distributed=False, jit_compile=False)
    result = run([*args, "--intra-op-threads", "0", "--name", "tf_threads"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "saved_models/tf_threads/1/run.json").read_text())
    assert record["environment"]["intra_op_threads"] == 0  # TensorFlow's own choice
    result = run(["train", "dense", "--intra-op-threads", "-1"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "--intra-op-threads: -1 is less than 0" in stderr_line(result)
    result = run(["train", "dense", "--batch-shards", "0"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "--batch-shards: 0 is not a positive integer" in stderr_line(result)


def test_a_convolutional_model_trains_on_onednn_unless_the_user_says(tmp_path):
    """TensorFlow leaves oneDNN's kernels off on CPUs without AVX-512-class features; `train conv` turns them on.

    The conv model trained 3x as fast on them on an AVX2 AMD EPYC
    (`presets._convolutional`). The user's own TF_ENABLE_ONEDNN_OPTS stands.
    """
    args = ["train", "conv", "--epochs", "1", "--limit", "256", "--quiet"]
    result = run(args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "saved_models/conv/1/run.json").read_text())
    assert record["environment"]["onednn"] is True
    result = run([*args, "--name", "eigen"], cwd=tmp_path, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"})
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "saved_models/eigen/1/run.json").read_text())
    assert record["environment"]["onednn"] is False


def test_model_arguments_out_of_range_exit_2(tmp_path):
    result = run(["train", "denoising", "--noise-level", "1.5"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert "noise_level for dropout must be in [0, 1), got 1.5" in stderr_line(result)
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_after_the_command_finished_leaves_its_exit_status(tmp_path):
    """The signal lands in Python's teardown, after `aekeras export` printed what it published."""
    teardown_ctrl_c = (
        "import atexit, os, signal, sys\n"
        "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
        "from aekeras import cli\n"
        "sys.exit(cli.entry_point(['export', 'missing.keras', '--name', 'm']))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", teardown_ctrl_c], cwd=tmp_path, capture_output=True, text=True
    )
    # The command's own status (2: no such file) and its one line, no 130 and no traceback.
    assert finished.returncode == 2
    assert finished.stderr.startswith("aekeras: error: missing.keras") and finished.stderr.count("\n") == 1


def test_an_error_a_ctrl_c_caused_inside_c_code_is_the_interrupt_it_was(ctrl_c_at_its_default):
    """TensorFlow's array conversion turned a Ctrl-C into a SystemError: the check ended in a traceback."""
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept

    def converting_in_c():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            raise SystemError("returned a result with an exception set") from None

    before = signal.getsignal(signal.SIGINT)
    assert before is signal.default_int_handler  # the ctrl_c_at_its_default fixture's
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept():
            converting_in_c()
    with pytest.raises(SystemError):  # without a Ctrl-C, an error is itself
        with ctrl_c_kept():
            raise SystemError("a real one")
    assert signal.getsignal(signal.SIGINT) is before


def test_a_ctrl_c_that_a_finalizer_dropped_still_stops_the_block(monkeypatch, ctrl_c_at_its_default):
    """Raised inside `__del__` (TensorFlow's function finalizers), the interrupt is printed and dropped.

    Training then went on and published a new version after the user's Ctrl-C.
    """
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept, raise_if_pressed

    class Finalizer:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)

    dropped = []  # what Python reports as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept():
            Finalizer()  # collected at once; the interrupt goes no further than its __del__
            went_on = True
    assert went_on and dropped == [KeyboardInterrupt]
    # A step that cannot be undone asks first: the export published a version, then said "interrupted".
    published = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept():
            Finalizer()
            raise_if_pressed()
            published.append(True)
    assert published == [] and dropped == [KeyboardInterrupt] * 2
    raise_if_pressed()  # outside any block: nothing to raise


def test_a_run_stops_at_the_next_batch_after_a_ctrl_c_a_finalizer_dropped(monkeypatch, ctrl_c_at_its_default):
    """It trained every epoch left, and stopped only when the block around `fit` ended."""
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept
    from aekeras.training.callbacks import StopAfterCtrlC

    class Finalizer:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)

    class DroppedAtThirdBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                Finalizer()

    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    images = data.load_arrays("mnist", "test")[0][:512]
    model = DenseAutoencoder(latent_dim=4)
    model.compile(optimizer="adam", steps_per_execution=1)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept():
            model.fit(
                images,
                batch_size=64,
                epochs=3,
                verbose=0,
                callbacks=[DroppedAtThirdBatch(), StopAfterCtrlC()],
            )
    assert int(model.optimizer.iterations) == 3  # of 24


@pytest.mark.parametrize("presses, steps_run", [(1, 3), (2, 2)], ids=["once", "twice"])
def test_a_ctrl_c_in_training_is_raised_at_the_next_batch_and_a_second_at_once(
    ctrl_c_at_its_default, presses, steps_run
):
    """Raised where it landed, inside TensorFlow's C code, it once corrupted the heap: the run aborted.

    Pressed within the third step (here, as its batch begins), the first
    Ctrl-C lets that step finish and stops training as it ends; a second
    stops it where it lands.
    """
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept
    from aekeras.training.callbacks import StopAfterCtrlC

    went_on = []

    class PressedInThirdStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                for _ in range(presses):
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.2)
                went_on.append(batch)

    images = data.load_arrays("mnist", "test")[0][:512]
    model = DenseAutoencoder(latent_dim=4)
    model.compile(optimizer="adam", steps_per_execution=1)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept(at_safe_points=True):
            model.fit(
                images, batch_size=64, epochs=3, verbose=0, callbacks=[PressedInThirdStep(), StopAfterCtrlC()]
            )
    assert int(model.optimizer.iterations) == steps_run  # of 24
    assert went_on == ([2] if presses == 1 else [])


@pytest.mark.parametrize("helper", [True, False], ids=["stopping_at_a_batch", "plain_fit"])
def test_the_reports_fits_take_a_ctrl_c_at_the_end_of_the_batch(ctrl_c_at_its_default, helper):
    """The report takes a Ctrl-C where it lands (`aekeras report`'s block); its fits, at the batch's end.

    Pressed as the third step begins, the first Ctrl-C lets that step
    finish and stops the fit as it ends; a plain `fit` in the same block
    is stopped where the press lands, in TensorFlow's code.
    """
    from aekeras.interrupts import ctrl_c_kept
    from aekeras.training.callbacks import fit_stopping_at_a_batch

    class PressedInThirdStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)

    images = data.load_arrays("mnist", "test")[0][:512]
    model = DenseAutoencoder(latent_dim=4)
    model.compile(optimizer="adam", steps_per_execution=1)
    fit = functools.partial(fit_stopping_at_a_batch, model) if helper else model.fit
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept():
            fit(images, batch_size=64, epochs=3, verbose=0, callbacks=[PressedInThirdStep()])
    assert int(model.optimizer.iterations) == (3 if helper else 2)  # of 24
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # both blocks' handlers undone


def test_a_second_ctrl_c_stops_at_once_also_in_a_block_within(ctrl_c_at_its_default):
    """Pressed once while a run evaluated and again as its export traced, it waited for the export's end."""
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept(at_safe_points=True):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            steps.append("evaluated")
            with ctrl_c_kept(at_safe_points=True):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                steps.append("exported")
    assert steps == ["evaluated"]


def test_a_stop_after_the_command_published_and_reported_leaves_its_status(
    tmp_path, monkeypatch, ctrl_c_at_its_default
):
    """Taken as `aekeras train` returned, after its blocks ended, it exited 130 with "nothing was
    left half-written" over a version published and listed: a supervisor would publish it again."""
    import contextlib

    @contextlib.contextmanager
    def pressed_on_the_way_out():
        yield
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "keras_defaults", pressed_on_the_way_out)
    assert cli.main(["train", "dense", "--epochs", "1", "--limit", "512", "--quiet"]) == 0
    assert (tmp_path / "saved_models/dense/1/saved_model.pb").is_file()
    assert 'name: "dense"' in (tmp_path / "saved_models/models.config").read_text()


def test_a_ctrl_c_in_a_check_is_raised_at_its_next_batch(ctrl_c_at_its_default):
    """The LiteRT and ONNX checks' loops (`progress.tracked`) are safe points: the batch under way finishes."""
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept
    from aekeras.progress import tracked

    checked = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept(at_safe_points=True):
            for batch in tracked(range(5), 5, "batches", enabled=False):
                if batch == 1:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.2)
                checked.append(batch)
    assert checked == [0, 1]


def test_a_ctrl_c_after_publishing_is_noted_and_the_work_runs_to_its_end(ctrl_c_at_its_default):
    """After a version is published its records must follow: a later step's check must not raise."""
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept, publishing, raise_if_pressed

    finished = []
    try:
        with ctrl_c_kept():
            publishing()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            raise_if_pressed()
            finished.append(True)
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C after publishing stopped the work")
    assert finished == [True]


@pytest.mark.parametrize(
    "kept, line",
    [
        (5, "aekeras: interrupted after training; `aekeras train dense` evaluates and publishes it"),
        (
            4,
            "aekeras: interrupted; runs/dense keeps epoch 4 of 5, and `aekeras train dense` resumes after it",
        ),
        (
            1,
            "aekeras: interrupted; runs/dense keeps epoch 1 of 5, and `aekeras train dense` resumes after it",
        ),
        (
            0,
            "aekeras: interrupted in the first epoch, before anything was kept; `aekeras train dense` starts afresh",
        ),
    ],
)
def test_an_interrupted_run_says_what_was_kept_and_how_to_go_on(kept, line):
    from aekeras.errors import TrainingInterrupted

    assert cli._interrupted(TrainingInterrupted("runs/dense", kept, 5), ["train", "dense"]) == line


def test_what_an_interrupt_prints_on_its_way_out_is_dropped(capsys, ctrl_c_at_its_default):
    """TensorFlow printed a traceback (a SystemError from `__import__`) before the one line."""
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept

    def printing_its_traceback_in_c():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            print("Traceback (most recent call last): ... SystemError", file=sys.stderr)
            raise SystemError("returned a result with an exception set") from None

    print("before", file=sys.stderr)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_kept():
            printing_its_traceback_in_c()
    print("after", file=sys.stderr)
    assert capsys.readouterr().err == "before\nafter\n"


def test_a_process_that_ignores_ctrl_c_goes_on_ignoring_it():
    """A script's background job (`aekeras train ... &`) ignores SIGINT; the command must not take it back."""
    import os
    import signal

    from aekeras.interrupts import ctrl_c_kept

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_kept():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            finished = True
        assert finished and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
