"""Files that broke on disk or were tampered with: one line naming the file, exit status 2, nothing else lost.

Each test damages a copy of a real artifact (a run's backup and history,
a checkpoint, an export) the way a full disk, an interrupted copy or an
edit does.
"""

import contextlib
import errno
import json
import os
import resource
import shutil
import struct
import zipfile
import zlib

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from aekeras import data, export, signatures
from aekeras.cli import main
from aekeras.errors import DataError, ModelFileError, SettingsChangedError
from aekeras.models import load_model
from aekeras.training import runner
from aekeras.training.records import check_history
from aekeras.training.resume import RunClock, _check_readable, completed_epochs


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real run of one epoch on sklearn's digits: (its run folder, its export)."""
    root = tmp_path_factory.mktemp("run")
    digits = load_digits()
    arrays = root / "digits.npz"
    np.savez(arrays, images=(digits.images * 255 / 16).round().astype("uint8"), labels=digits.target)
    argv = ["train", "dense", "--data", str(arrays), "--latent-dim", "4", "--epochs", "1", "--quiet"]
    assert main([*argv, "--run-dir", str(root / "runs"), "--out", str(root / "saved_models")]) == 0
    return root / "runs" / "dense", root / "saved_models" / "dense" / "1"


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _backup(tmp_path, run):
    """A backup of epoch 1 around the run's real weights, laid out as `AtomicBackupAndRestore` does (its random and run state written here)."""
    run_dir, _ = run
    backup = tmp_path / "backup"
    backup.mkdir()
    with zipfile.ZipFile(run_dir / "model.keras") as archive:
        (backup / "latest.weights.h5").write_bytes(archive.read("model.weights.h5"))
    np.save(backup / "seed_states.npy", np.zeros((0, 2), np.int64))
    (backup / "run_state.json").write_text(
        json.dumps({"settings": {"model": "dense"}, "seconds": 1.0, "resumes": 0})
    )
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    return backup


@contextlib.contextmanager
def no_file_handles_left():
    """`ulimit -n` reached: every descriptor below the soft limit is in use, and opening one more fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_systems_refusal_is_not_called_damage(tmp_path, run):
    """Out of file handles, HDF5's and TensorFlow's errors read as damage had healthy files discarded on that advice."""
    backup = _backup(tmp_path, run)
    with no_file_handles_left(), pytest.raises(OSError) as caught:
        _check_readable(backup)
    assert caught.value.errno == errno.EMFILE and caught.value.filename == str(backup / "latest.weights.h5")
    with no_file_handles_left(), pytest.raises(Exception) as caught:
        export.load(run[1])
    assert not isinstance(caught.value, ModelFileError) and os.strerror(errno.EMFILE) in str(caught.value)
    export.load(run[1])  # and with handles, it loads


DAMAGES = {
    "weights cut short": ("latest.weights.h5", _cut),
    "weights emptied": ("latest.weights.h5", lambda p: p.write_bytes(b"")),
    "random state cut short": ("seed_states.npy", _cut),
    "state not JSON": ("run_state.json", lambda p: p.write_text('{"settings": {"mod')),
    "state of wrong types": ("run_state.json", lambda p: p.write_text('{"settings": 3, "seconds": "x"}')),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_backup_is_refused_in_one_line_and_kept(tmp_path, run, damage):
    name, spoil = DAMAGES[damage]
    backup = _backup(tmp_path, run)
    RunClock(backup, {"model": "dense"})  # whole, it resumes
    spoil(backup / name)
    before = {p.name: p.read_bytes() for p in backup.iterdir()}
    with pytest.raises(
        SettingsChangedError, match=rf"backup/{name} is damaged \(.*\); pass --restart"
    ) as caught:
        RunClock(backup, {"model": "dense"})
    assert "\n" not in str(caught.value)
    assert {p.name: p.read_bytes() for p in backup.iterdir()} == before  # nothing of it lost
    RunClock(backup, {"model": "dense"}, discard_backup=True)  # and --restart starts afresh


def test_random_states_for_other_seed_generators_are_refused_in_one_line(tmp_path, run, monkeypatch, capsys):
    """A backup of a model class that had another count of `SeedGenerator`s ended in zip's ValueError traceback."""

    class CtrlCInSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    digits = run[0].parent.parent / "digits.npz"
    argv = ["train", "vae", "--data", str(digits), "--latent-dim", "2", "--epochs", "2", "--nll-samples", "0"]
    argv += ["--quiet", "--run-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "saved_models")]
    run_callbacks = runner.run_callbacks
    monkeypatch.setattr(
        runner, "run_callbacks", lambda *a, **k: [*run_callbacks(*a, **k), CtrlCInSecondEpoch()]
    )
    assert main(argv) == 130
    monkeypatch.setattr(runner, "run_callbacks", run_callbacks)
    states = tmp_path / "runs/vae/backup/seed_states.npy"
    (one,) = np.load(states)  # the VAE's sampling; a class that gained a generator would expect two
    np.save(states, np.stack([one, one]))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"aekeras: error: {states} is damaged (holds random states of shape (2, 2) and type int64, where the "
        "model's seed generators need integers of shape (1, 2)); pass --restart to discard the backup and start "
        "afresh\n"
    )
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()} == before
    assert main([*argv, "--restart"]) == 0


@pytest.mark.parametrize("count", ['{"epoch": 1', "{}", '{"epoch": -3}', '{"epoch": "2"}', "[2]"])
def test_an_edited_epoch_count_is_refused_in_one_line(tmp_path, run, count):
    backup = _backup(tmp_path, run)
    (backup / "training_metadata.json").write_text(count)
    with pytest.raises(SettingsChangedError, match=r"training_metadata.json is damaged .*--restart"):
        completed_epochs(backup)


def _history(run, tmp_path, *rows):
    """The run's real `history.csv` with `rows` (each a function of the header's column count) appended."""
    path = tmp_path / "history.csv"
    shutil.copy(run[0] / "history.csv", path)
    columns = len(path.read_text().splitlines()[0].split(","))
    with open(path, "a") as f:
        f.writelines(row(columns) + "\n" for row in rows)
    return path


GARBLED = {
    "a value not a number": lambda n: "1," + ",".join(["0.6x"] * (n - 1)),
    "a row short of values": lambda n: "1,0.6",
    "not CSV rows of numbers": lambda n: "hello",
}


@pytest.mark.parametrize("garbled", GARBLED, ids=list(GARBLED))
def test_a_garbled_history_is_refused_before_the_resume_trains(tmp_path, run, garbled):
    path = _history(run, tmp_path, GARBLED[garbled])
    with pytest.raises(
        SettingsChangedError, match=r"history.csv is damaged \(expected the rows CSVLogger.*move it aside"
    ):
        check_history(path, 2)


def test_a_history_of_non_finite_and_missing_values_resumes(tmp_path, run):
    # What CSVLogger writes for a NaN epoch, an infinite one and a metric it lacked.
    check_history(_history(run, tmp_path, lambda n: ",".join(["1", *(["nan", "inf", "NA"] * n)[: n - 1]])), 2)


def test_a_history_row_cut_short_after_the_backup_is_left_to_trim(tmp_path, run):
    check_history(_history(run, tmp_path, lambda n: "1,0.6"), 1)  # a kill as it logged epoch 2


def _rezipped(source, target, name, change):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for member in old.namelist():
            content = old.read(member)
            new.writestr(member, change(content) if member == name else content)


def test_a_checkpoint_garbled_inside_its_zip_is_refused_in_one_line(tmp_path, run):
    run_dir, _ = run
    garbled = tmp_path / "garbled.keras"
    content = bytearray((run_dir / "model.keras").read_bytes())
    middle = len(content) // 2
    content[middle : middle + 64] = bytes(b ^ 0x5A for b in content[middle : middle + 64])  # the CRC fails
    garbled.write_bytes(bytes(content))
    with pytest.raises(ModelFileError, match=r"garbled.keras: damaged .keras file \(Bad CRC-32"):
        load_model(garbled)
    cut = tmp_path / "cut.keras"  # a whole zip around weights cut short
    _rezipped(run_dir / "model.keras", cut, "model.weights.h5", lambda b: b[: len(b) // 2])
    with pytest.raises(ModelFileError, match=r"cut.keras: damaged .keras file \(.*truncated file"):
        load_model(cut)


@pytest.mark.parametrize(
    "name", ["saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index"]
)
def test_an_export_cut_short_is_refused_in_one_line(tmp_path, run, name):
    _, version = run
    copy = shutil.copytree(version, tmp_path / "1")
    _cut(copy / name)
    with pytest.raises(
        ModelFileError, match=r"/1: damaged SavedModel \(.+\); expected the files an export writes"
    ):
        export.load(copy)


def test_garbled_value_counts_are_refused_not_ignored(tmp_path, run):
    _, version = run
    copy = shutil.copytree(version, tmp_path / "1")
    assert signatures.read_value_counts(copy) == {}
    for text in ("{not json", '{"labels": "ten"}', "[10]"):
        (copy / signatures.VALUE_COUNTS_FILE).write_text(text)
        with pytest.raises(ModelFileError, match=r"aekeras_value_counts.json: damaged"):
            signatures.read_value_counts(copy)


@pytest.mark.parametrize(
    "record",
    ['{"data": {"sour', '{"data": 5}', '{"data": {"source": 5, "options": {}}}', '{"data": {"options": {}}}'],
)
def test_a_garbled_run_json_asks_for_data_in_one_line(tmp_path, run, capsys, record):
    _, version = run
    copy = shutil.copytree(version, tmp_path / "1")
    (copy / "run.json").write_text(record)
    assert main(["onnx", str(copy)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("aekeras: error: ") and error.endswith("pass --data") and "\n" not in error
    if record == '{"data": {"options": {}}}':
        assert "(no 'source')" in error
    assert not (copy / "onnx").exists()


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height grey pixels, with a tiny compressed body."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * 1000)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_in_a_folder_is_named_not_decoded(tmp_path):
    for i in range(3):
        Image.new("L", (16, 16), 40 * i).save(tmp_path / f"{i}.png")
    _png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(
        DataError, match=r"bomb.png: not a readable image \(Image size \(10000000000 pixels\)"
    ):
        data.open_source(str(tmp_path))


def _png_folder(folder, count=12):
    folder.mkdir()
    for i in range(count):
        Image.new("L", (8, 8), 20 * i).save(folder / f"{i:02d}.png")
    return folder


def test_a_file_removed_after_the_scan_is_named_in_one_line(tmp_path):
    """Gone while the folder was read (decoded up front, or as each epoch streams it): once a NotFoundError traceback."""
    folder = _png_folder(tmp_path / "images")
    source = data.open_source(str(folder))
    (folder / "05.png").unlink()
    with pytest.raises(DataError, match=r"05.png: no longer there \(it was when the folder was scanned"):
        source.examples("train")
    streamed = data.open_source(str(_png_folder(tmp_path / "streamed")), memory_limit=1)
    batches = data.make_dataset(streamed.examples("train"), streamed.spec, batch_size=4)
    (tmp_path / "streamed" / "07.png").unlink()
    with pytest.raises(DataError, match=r"07.png: no longer there"):
        with data.naming_undecodable_files(streamed):
            for _ in batches:
                pass


def test_a_version_past_int64_is_refused_as_tf_serving_skips_it(tmp_path, run, capsys):
    """TF Serving reads versions as int64 and skips a folder beyond: the next export after 2**63 - 1 was never served."""
    run_dir, version = run
    model_dir = tmp_path / "saved_models" / "dense"
    shutil.copytree(version, model_dir / str(export.MAX_VERSION))
    shutil.copytree(version, model_dir / str(2**64))  # not a version to TF Serving, nor here
    assert export.versions(model_dir) == [export.MAX_VERSION]
    before = sorted(p.name for p in model_dir.iterdir())
    assert main(["export", str(run_dir), "--name", "dense", "--out", str(model_dir.parent)]) == 2
    error = capsys.readouterr().err.strip()
    assert f"dense/{export.MAX_VERSION}: no version can follow it" in error and "\n" not in error
    assert sorted(p.name for p in model_dir.iterdir()) == before  # no staging folder left either


def test_a_models_config_it_cannot_read_is_kept_and_nothing_published(tmp_path, run, capsys):
    """A typo in a hand-edited config: rewritten, its policies, other models and serving root were lost."""
    run_dir, version = run
    out = tmp_path / "saved_models"
    shutil.copytree(version, out / "dense" / "1")
    text = (
        'model_config_list {\n  config {\n    name: "dense"\n    base_path: "/models/dense"\n'
        '    model_platfrom: "tensorflow"\n  }\n}\n'
    )
    (out / "models.config").write_text(text)
    assert main(["export", str(run_dir), "--name", "dense", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        "models.config: not a TF Serving model config this tensorflow-serving-api can read (5:5 : " in error
    )
    assert "\n" not in error and (out / "models.config").read_text() == text
    assert export.versions(out / "dense") == [1]
    # aekeras train stops before it trains.
    argv = ["train", "dense", "--data", str(run_dir.parent.parent / "digits.npz"), "--epochs", "1", "--quiet"]
    assert main([*argv, "--out", str(out), "--run-dir", str(tmp_path / "runs")]) == 2
    assert "not a TF Serving model config" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    # The other form TF Serving takes, which the rewrite would replace.
    custom = 'custom_model_config {\n  type_url: "x"\n}\n'
    (out / "models.config").write_text(custom)
    with pytest.raises(ModelFileError, match=r"models.config: lists its models in a custom_model_config"):
        export.write_models_config(out)
    assert (out / "models.config").read_text() == custom


def test_a_models_config_spoilt_while_it_exported_leaves_the_version_published_and_says_so(
    tmp_path, run, capsys, monkeypatch
):
    run_dir, _ = run
    out = tmp_path / "saved_models"
    out.mkdir()
    (out / "models.config").write_text("model_config_list {")  # after the command's check
    monkeypatch.setattr(export, "check_models_config", lambda out: None)
    assert main(["export", str(run_dir), "--name", "dense", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"SavedModel: {out}/dense/1" in captured.out and "TF Serving config" not in captured.out
    assert captured.err.startswith(f"aekeras: error: {out}/dense/1 is published but not listed: ")
    assert "write_models_config(" in captured.err and captured.err.count("\n") == 1
    assert export.versions(out / "dense") == [1]


def test_a_damaged_tflite_file_is_refused_in_one_line(tmp_path, run):
    from aekeras import tflite

    _, version = run
    path = tflite.convert(shutil.copytree(version, tmp_path / "dense" / "1"), "none")
    content = path.read_bytes()
    for damaged in (b"", content[: len(content) // 2], b"not a model\n" * 50):
        path.write_bytes(damaged)
        with pytest.raises(
            ModelFileError, match=r"dense-none.tflite: not a readable .tflite file \(.+\); ex"
        ):
            tflite.Runner(path)
    with pytest.raises(FileNotFoundError, match=r"dense-int8.tflite: no such file"):
        tflite.Runner(path.with_name("dense-int8.tflite"))


def test_a_damaged_onnx_file_is_refused_in_one_line(tmp_path, run):
    from aekeras import onnx

    _, version = run
    paths = onnx.convert(shutil.copytree(version, tmp_path / "1"))
    content = paths["encode"].read_bytes()
    for damaged in (b"", content[: len(content) // 2]):
        paths["encode"].write_bytes(damaged)
        with pytest.raises(ModelFileError, match=r"onnx/encode.onnx: not a readable ONNX file \(.+\); ex"):
            onnx.Runner(tmp_path / "1")
