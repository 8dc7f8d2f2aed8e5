"""benchmarks/deployment.py: every deployment format of a user's trained exports, measured and tabled."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "deployment.py"
AEKERAS = [sys.executable, "-m", "aekeras"]
FLOAT_FORMATS = ("ONNX", "TFLite none")


def _succeeds(command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _table(lines):
    """The rows of a Markdown table as lists of cells, its header and rule left out."""
    rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]
    return rows[2:]


def test_every_format_of_an_export_and_of_its_int8_weights_export_is_measured(tmp_path, digits_npz):
    train = ["train", "dense", "--latent-dim", "8", "--data", str(digits_npz), "--epochs", "2", "--quiet"]
    _succeeds([*AEKERAS, *train], tmp_path)
    _succeeds([*AEKERAS, "export", "runs/dense", "--name", "dense8", "--int8-weights"], tmp_path)
    plain, int8 = tmp_path / "saved_models/dense/1", tmp_path / "saved_models/dense8/1"
    output = _succeeds([sys.executable, str(SCRIPT), str(plain), str(int8)], tmp_path)
    formats_table, sizes_table = (block.splitlines() for block in output.strip().split("\n\n"))

    rows = {row[1]: row for row in _table(formats_table)}
    assert list(rows) == [
        "SavedModel",
        *FLOAT_FORMATS,
        "TFLite float16",
        "TFLite dynamic",
        "TFLite int8",
        "TFLite int16x8",
        "SavedModel, `--int8-weights`",
        "TFLite int16x8 of it",
    ]
    # Both exports are of the run's model, listed under its name.
    assert {row[0] for row in rows.values()} == {"dense"}
    kib, latency, mse, pixels, codes = (
        [float(re.sub(r" (KiB|ms)$", "", row[i])) for row in rows.values()] for i in range(2, 7)
    )
    assert min(kib) > 0 and min(latency) > 0 and min(mse) > 0
    kib = dict(zip(rows, kib, strict=True))
    measured = dict(zip(rows, zip(mse, pixels, codes, strict=True), strict=True))
    assert measured["SavedModel"][1:] == measured["SavedModel, `--int8-weights`"][1:] == (0.0, 0.0)
    for form in FLOAT_FORMATS:  # the same function in float32: the SavedModel's MSE and outputs
        assert measured[form][0] == pytest.approx(measured["SavedModel"][0], abs=2e-5)
        assert max(measured[form][1:]) < 1e-4, form
    # Issue 15's bound: int16x8 of kernels already on the int8 grid stays within 1e-2 of them.
    assert measured["TFLite int16x8 of it"][1] < 1e-2
    # The files' own sizes: each conversion's file beside its export.
    for form in ("none", "int16x8"):
        file_kib = (plain / f"dense-{form}.tflite").stat().st_size / 1024
        assert kib[f"TFLite {form}"] == pytest.approx(file_kib, abs=0.05)

    (sizes,) = _table(sizes_table)  # the plain export's files only
    assert sizes[0] == "dense"
    float_kib, int16x8_kib, stripped_float, stripped_int16x8 = (
        float(sizes[i].split()[0]) for i in (1, 2, 4, 5)
    )
    assert (float_kib, int16x8_kib) == (kib["TFLite none"], kib["TFLite int16x8"])
    assert stripped_float < float_kib and stripped_int16x8 < int16x8_kib
    for ratio, (numerator, denominator) in (
        (3, (int16x8_kib, float_kib)),
        (6, (stripped_int16x8, stripped_float)),
    ):
        assert float(sizes[ratio].rstrip("%")) == pytest.approx(100 * numerator / denominator, abs=0.2)
    # Stripped in a temporary copy: the export's own folder holds no other file.
    assert sorted(path.name for path in plain.glob("*.tflite")) == sorted(
        f"dense-{form}.tflite" for form in ("none", "float16", "dynamic", "int8", "int16x8")
    )
