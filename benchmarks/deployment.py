"""Every deployment format of trained exports, measured: README's deployment tables.

    python benchmarks/deployment.py saved_models/dense/1 saved_models/dense_int8/1 ...

For each export: the SavedModel, its ONNX files and its TFLite file in each
quantisation, each with its size, its median latency for one image through
`serving_default`, its test reconstruction MSE, and the largest differences
from the SavedModel in pixels (`serving_default`'s reconstructions and
`decode`'s images) and in codes (every output of `encode`), on
the test split of the data the export's run trained on. An export whose
kernels lie on the int8 grid (`aekeras export RUN --int8-weights`) gets
the SavedModel's row and int16x8's, listed under its run's model. Prints
two Markdown tables, the second the int16x8 files' sizes against the
float files', as written and with `--strip-names`; conversions are written
beside each export, as the commands write them, the stripped ones in a
temporary copy.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from aekeras import data, onnx, quantization, serving, signatures, tflite
from aekeras.training.records import data_options, read_record

LATENCY_REPEATS = 200
CALIBRATION_IMAGES = 500


def _median_latency(call, image):
    call(image)  # the first call builds kernels and caches
    seconds = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        call(image)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def _test_and_calibration_images(version_dir):
    """The test images and calibration images of the data the export's run.json names."""
    source, options = data_options(read_record(version_dir))
    test_images, _ = data.load_arrays(source, "test", **options)
    return test_images, tflite.calibration_images(source, CALIBRATION_IMAGES, **options)


def _largest(differences):
    """`(pixels, codes)`: the largest differences in images (reconstructions and decodings) and in codes."""
    pixels = [differences[s][o] for s, o in (("serving_default", "reconstruction"), ("decode", "images"))]
    return max(pixels), max(differences["encode"].values())


def _rows(version_dir, test_images, calibration):
    """One row per format of one export: (format, bytes, latency s, test MSE, max |diff| pixels, codes)."""
    server = serving.LocalServer(version_dir)
    saved_model = server.model.signatures["serving_default"]
    size = sum(
        f.stat().st_size
        for f in version_dir.rglob("*")
        if f.is_file() and f.suffix not in (".tflite", ".onnx")
    )
    latency = _median_latency(lambda x: saved_model(images=tf.constant(x)), test_images[:1])
    mse = serving.reconstruction_mse(server, test_images)
    if quantization.on_int8_grid(server.model):
        litert = tflite.Runner(tflite.convert(version_dir, "int16x8", images=calibration))
        return [
            ("SavedModel, `--int8-weights`", size, latency, mse, 0.0, 0.0),
            _row("TFLite int16x8 of it", litert.path.stat().st_size, litert, server, test_images),
        ]
    rows = [("SavedModel", size, latency, mse, 0.0, 0.0)]
    onnx_paths = onnx.convert(version_dir)
    onnx_size = sum(path.stat().st_size for path in onnx_paths.values())
    rows.append(_row("ONNX", onnx_size, onnx.Runner(onnx.onnx_dir(version_dir)), server, test_images))
    for quantize in tflite.QUANTIZATIONS:
        images = calibration if quantize in tflite.CALIBRATED else None
        litert = tflite.Runner(tflite.convert(version_dir, quantize, images=images))
        rows.append(_row(f"TFLite {quantize}", litert.path.stat().st_size, litert, server, test_images))
    return rows


def stripped_sizes(version_dir, calibration):
    """`{quantize: bytes}` of the float and int16x8 files with `--strip-names`, converted in a temporary copy."""
    with tempfile.TemporaryDirectory() as folder:
        copy = shutil.copytree(version_dir, Path(folder) / version_dir.name)
        return {
            quantize: tflite.convert(copy, quantize, images=calibration, strip_names=True).stat().st_size
            for quantize in ("none", "int16x8")
        }


def _row(format_name, size, runner, server, test_images):
    """A converted format's row, its test MSE of the calls its differences compare (`Differences`)."""
    differences = signatures.max_differences(server.model, runner, test_images, format_name)
    latency = _median_latency(lambda x: runner("serving_default", images=x), test_images[:1])
    return (format_name, size, latency, differences.reconstruction_mse[0], *_largest(differences))


def markdown(results):
    lines = [
        "| model | format | size | latency, 1 image | test MSE | max \\|diff\\| pixels | max \\|diff\\| codes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rows in results.items():
        for form, size, latency, mse, pixels, codes in rows:
            lines.append(
                f"| {name} | {form} | {size / 1024:.1f} KiB | {latency * 1e3:.3f} ms | {mse:.5f} "
                f"| {pixels:.1e} | {codes:.1e} |"
            )
    return "\n".join(lines)


def size_markdown(results, stripped):
    """The int16x8 files against the float ones: as written, and both with `--strip-names`."""
    lines = [
        "| model | float32 | int16x8 | int16x8 / float32 | float32, stripped | int16x8, stripped | int16x8 / float32, stripped |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, sizes in stripped.items():
        written = {form: size for form, size, *_ in results[name]}
        float_size, int16x8_size = written["TFLite none"], written["TFLite int16x8"]
        lines.append(
            f"| {name} | {float_size / 1024:.1f} KiB | {int16x8_size / 1024:.1f} KiB "
            f"| {int16x8_size / float_size:.1%} | {sizes['none'] / 1024:.1f} KiB "
            f"| {sizes['int16x8'] / 1024:.1f} KiB | {sizes['int16x8'] / sizes['none']:.1%} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    results, stripped = {}, {}
    for path in args.version_dirs:
        name = read_record(path)["settings"]["model"]
        test_images, calibration = _test_and_calibration_images(path)  # read once, for every format
        rows = _rows(path, test_images, calibration)
        results.setdefault(name, []).extend(rows)
        if rows[0][0] == "SavedModel":  # not an `--int8-weights` export
            stripped[name] = stripped_sizes(path, calibration)
    print(markdown(results))
    print()
    print(size_markdown(results, stripped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
