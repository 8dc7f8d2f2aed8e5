"""TFLite (LiteRT) conversion of exported SavedModels, and running the result.

`convert(version_dir, quantize)` converts every signature of an export into
one `.tflite` file written beside it, `<version_dir>/<model>-<quantize>.tflite`.
`Runner` runs such a file with the LiteRT interpreter (`ai_edge_litert`)
through its signature runners.
"""

import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from aekeras import data

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")


def tflite_path(version_dir, quantize):
    """Where `convert` writes: `<version_dir>/<model name>-<quantize>.tflite`."""
    version_dir = Path(version_dir)
    return version_dir / f"{version_dir.absolute().parent.name}-{quantize}.tflite"


def calibration_images(num_images=500, *, data_dir=None, seed=0):
    """Real MNIST training images on the [0, 1] scale, chosen with `seed`."""
    images, _ = data.load_arrays("mnist", "train", data_dir=data_dir)
    chosen = np.random.default_rng(seed).choice(len(images), num_images, replace=False)
    return images[chosen].astype(np.float32) / 255.0


def _representative_dataset(saved_model, images):
    """Calibration examples for every signature, as (signature, inputs) pairs.

    The decoder is calibrated on the codes the encoder gives for the same
    images, so its ranges are those it meets in use.
    """
    signatures = saved_model.signatures

    def generate():
        for image in images:
            batch = tf.constant(image[np.newaxis])
            yield "serving_default", {"images": batch}
            yield "encode", {"images": batch}
            latent = signatures["encode"](images=batch)["latent"]
            yield "decode", {"latent": latent}
            if "sample" in signatures:
                yield "sample", {"num_samples": tf.constant(1, tf.int32)}

    return generate


def convert(version_dir, quantize="none", *, images=None):
    """Converts an exported SavedModel to one TFLite file with all signatures.

    Args:
        version_dir: an export's version folder (`saved_models/<name>/<n>`).
        quantize: `"none"` (float32), `"float16"` (float16 weights),
            `"dynamic"` (int8 weights, float activations) or `"int8"` (full
            integer: int8 weights and activations, calibrated on `images`;
            inputs and outputs stay float32, so every variant is called the
            same way).
        images: float32 `[n, 28, 28, 1]` calibration images in [0, 1] for
            `"int8"`; defaults to 500 real MNIST training images.

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
        if images is None:
            images = calibration_images()
        converter.representative_dataset = _representative_dataset(saved_model, images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        # The converter's own calibration still uses tf.lite.Interpreter.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        content = converter.convert()
    path = tflite_path(version_dir, quantize)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        staging.write_bytes(content)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return path


class Runner:
    """Runs a converted file's signatures with the LiteRT interpreter.

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
        self._runners = {}

    def __call__(self, signature_name="serving_default", **inputs):
        if signature_name not in self.signatures:
            raise ValueError(
                f"unknown signature {signature_name!r} (this file has {sorted(self.signatures)})"
            )
        if signature_name not in self._runners:
            self._runners[signature_name] = self.interpreter.get_signature_runner(signature_name)
        return self._runners[signature_name](**inputs)

    def reconstruction_mse(self, images, batch_size=256):
        """Mean squared error of `serving_default` reconstructions on [0, 1] images."""
        errors = [
            self("serving_default", images=images[i : i + batch_size])["score"]
            for i in range(0, len(images), batch_size)
        ]
        return float(np.mean(np.concatenate(errors)))
