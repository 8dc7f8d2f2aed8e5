"""TFLite (LiteRT) conversion of exported SavedModels, and running the result.

`convert(version_dir, quantize)` converts every signature of an export into
one `.tflite` file written beside it, `<version_dir>/<model>-<quantize>.tflite`.
`Runner` runs such a file with the LiteRT interpreter (`ai_edge_litert`)
through its signature runners, checking every call against the file's own
signatures.
"""

import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from aekeras import data, losses
from aekeras.choices import QUANTIZATIONS
from aekeras.progress import tracked
from aekeras.signatures import IMAGE_INPUT, Contract, example_inputs


def tflite_path(version_dir, quantize):
    """Where `convert` writes: `<version_dir>/<model name>-<quantize>.tflite`."""
    version_dir = Path(version_dir)
    return version_dir / f"{version_dir.absolute().parent.name}-{quantize}.tflite"


def calibration_images(source, num_images=500, *, seed=0, **read_options):
    """Up to `num_images` training images of `source` on [0, 1], chosen with `seed`.

    A smaller training set is used whole.
    """
    images, _ = data.load_arrays(source, "train", **read_options)
    count = min(num_images, len(images))
    chosen = np.random.default_rng(seed).choice(len(images), count, replace=False)
    return images[np.sort(chosen)]


def _representative_dataset(saved_model, images):
    """Calibration examples for every signature, as (signature, inputs) pairs.

    The decoder is calibrated on the codes the encoder gives for the same
    images, so its ranges are those it meets in use.
    """
    contract = Contract.from_saved_model(saved_model)
    encode = saved_model.signatures["encode"]

    def generate():
        for image in images:
            batch = tf.constant(image[np.newaxis])
            for name, signature in contract.signatures.items():
                yield name, example_inputs(signature, batch, encode)

    return generate


def _write_whole(path, content):
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        staging.write_bytes(content)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def convert(version_dir, quantize="none", *, images=None):
    """Converts an exported SavedModel to one TFLite file with all signatures.

    Args:
        version_dir: an export's version folder (`saved_models/<name>/<n>`).
        quantize: `"none"` (float32), `"float16"` (float16 weights),
            `"dynamic"` (int8 weights, float activations) or `"int8"` (full
            integer: int8 weights and activations, calibrated on `images`;
            inputs and outputs stay float32, so every variant is called the
            same way).
        images: float32 calibration images on [0, 1] of the export's image
            shape, needed for `"int8"` (see `calibration_images`).

    Returns:
        The `Path` of the `.tflite` file, written whole or not at all.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r} (expected one of {QUANTIZATIONS})")
    version_dir = Path(version_dir)
    if not (version_dir / "saved_model.pb").is_file():
        raise FileNotFoundError(f"{version_dir}: no saved_model.pb (expected an export's version folder)")
    saved_model = tf.saved_model.load(str(version_dir), tags=["serve"])
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(version_dir), signature_keys=sorted(saved_model.signatures)
    )
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if images is None or len(images) == 0:
            raise ValueError("int8 quantisation needs calibration images (see calibration_images)")
        Contract.from_saved_model(saved_model).check("encode", {IMAGE_INPUT: images[:1]})
        converter.representative_dataset = _representative_dataset(saved_model, images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        # The converter's own calibration still uses tf.lite.Interpreter.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        content = converter.convert()
    path = tflite_path(version_dir, quantize)
    _write_whole(path, content)
    return path


class Runner:
    """Runs a converted file's signatures with the LiteRT interpreter.

    Every call is checked against the file's own signatures first (names,
    shapes, dtypes, images on [0, 1]): LiteRT itself would resize its
    inputs to whatever it is given.

    Args:
        path: a `.tflite` file written by `convert`.

    Example:

    >>> runner = Runner("saved_models/dense/1/dense-int8.tflite")
    >>> runner("serving_default", images=images)["reconstruction"]
    """

    def __init__(self, path):
        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(self.path))
        self.signatures = self.interpreter.get_signature_list()
        self.contract = Contract.from_tflite(self.interpreter)
        self._runners = {}

    def __call__(self, signature_name="serving_default", **inputs):
        arrays = self.contract.check(signature_name, inputs)
        if signature_name not in self._runners:
            self._runners[signature_name] = self.interpreter.get_signature_runner(signature_name)
        return self._runners[signature_name](**arrays)

    def reconstruction_errors(self, images, batch_size=256, verbose=False):
        """Per-image MSE on [0, 1] of `serving_default` reconstructions (`verbose`: show progress)."""
        starts = range(0, len(images), batch_size)
        outputs = [
            self("serving_default", images=images[i : i + batch_size])["reconstruction"]
            for i in tracked(starts, len(starts), "LiteRT on the test images (batches)", verbose)
        ]
        return np.asarray(losses.squared_error(images, np.concatenate(outputs)))

    def reconstruction_mse(self, images, batch_size=256, verbose=False):
        """Mean squared error of `serving_default` reconstructions on [0, 1] images."""
        return float(np.mean(self.reconstruction_errors(images, batch_size, verbose)))
