"""TFLite (LiteRT) conversion of exported SavedModels, and running the result.

`convert(version_dir, quantize)` converts every signature of an export into
one `.tflite` file written beside it, `<version_dir>/<model>-<quantize>.tflite`.
`Runner` runs such a file with the LiteRT interpreter (`ai_edge_litert`)
through its signature runners, checking every call against the file's own
signatures.
"""

import os
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from aekeras import data, export, losses
from aekeras.choices import CALIBRATED, QUANTIZATIONS
from aekeras.errors import ModelFileError, first_line
from aekeras.interrupts import ctrl_c_kept, raise_if_pressed
from aekeras.progress import tracked
from aekeras.signatures import Contract, batch_inputs, example_inputs, read_value_counts
from aekeras.signatures import max_differences as max_differences_from
from aekeras.staging import write_atomically
from aekeras.tflite_files import compact, model_object

INT16_RANGE_MARGIN = 1.2  # int16x8: how far beyond the calibrated range activations stay unclipped
# Fewer calibration images than this get a note: TensorFlow's guide asks for
# a representative set of about a hundred to a few hundred.
FEW_CALIBRATION_IMAGES = 100
# int16x8: the seed the random ops (a VAE's `sample`) draw from while calibrating (`_seeded_random_ops`).
CALIBRATION_SEED = 1


def tflite_path(version_dir, quantize):
    """Where `convert` writes: `<version_dir>/<model name>-<quantize>.tflite`."""
    version_dir = Path(version_dir)
    return version_dir / f"{version_dir.absolute().parent.name}-{quantize}.tflite"


def calibration_images(source, num_images=500, *, seed=0, with_labels=False, **read_options):
    """Up to `num_images` training images of `source` on [0, 1], chosen with `seed`.

    A smaller training set is used whole. `with_labels`: returns
    `(images, labels)`, for models that read labels.
    """
    images, labels = data.load_arrays(source, "train", **read_options)
    count = min(num_images, len(images))
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))
    if with_labels:
        if labels is None:
            raise ValueError(f"{source}: has no labels, and this model reads them")
        return images[chosen], labels[chosen]
    return images[chosen]


def _representative_dataset(saved_model, images, labels):
    """Calibration examples for every signature, as (signature, inputs) pairs.

    The decoder is calibrated on the codes the encoder gives for the same
    images, so its ranges are those it meets in use.
    """
    contract = Contract.from_saved_model(saved_model)
    encode = saved_model.signatures["encode"]

    def generate():
        for i, image in enumerate(images):
            batch = tf.constant(image[np.newaxis])
            label = None if labels is None else labels[i : i + 1]
            for name, signature in contract.signatures.items():
                yield name, example_inputs(signature, batch, encode, label)

    return generate


# A Ctrl-C while TensorFlow converts stays a Ctrl-C (one a finalizer
# dropped let the conversion run on and replace the file), in a notebook
# as in `aekeras tflite`. It is raised before the file is written, not
# inside the converter (which calls back into Python to calibrate).
@ctrl_c_kept(at_safe_points=True)
def convert(version_dir, quantize="none", *, images=None, labels=None, strip_names=False):
    """Converts an exported SavedModel to one TFLite file with all signatures.

    Args:
        version_dir: an export's version folder (`saved_models/<name>/<n>`).
        quantize: `"none"` (float32), `"float16"` (float16 weights),
            `"dynamic"` (int8 weights, float activations), `"int8"` (full
            integer: int8 weights and activations) or `"int16x8"` (int8
            weights, 16-bit activations: LiteRT's mode for image-to-image
            models); the last two are calibrated on `images`. Inputs and
            outputs stay float32 in every mode, so every variant is called
            the same way.
        images: float32 calibration images on [0, 1] of the export's image
            shape, needed for `"int8"` and `"int16x8"` (see
            `calibration_images`).
        labels: the calibration images' labels, for models that read them
            (`calibration_images(..., with_labels=True)`).
        strip_names: drop the names of the tensors that no signature reads
            or writes (labels for debugging): a smaller file, the same
            model (`aekeras.tflite_files`).

    Returns:
        The `Path` of the `.tflite` file, written whole or not at all.

    Raises:
        KeyboardInterrupt: on Ctrl-C, with nothing written.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r} (expected one of {QUANTIZATIONS})")
    version_dir = Path(version_dir)
    saved_model = export.load(version_dir)
    if quantize in CALIBRATED:
        if images is None or len(images) == 0:
            raise ValueError(f"{quantize} quantisation needs calibration images (see calibration_images)")
        # Every image and label, with the export's class count: one 0-255
        # image or unknown class would skew the calibrated ranges unseen.
        contract = Contract.from_saved_model(saved_model, version_dir)
        contract.check("encode", batch_inputs(images, labels, 0, len(images)))
    names = sorted(saved_model.signatures)
    with warnings.catch_warnings():
        # The converter's own calibration still uses tf.lite.Interpreter.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        if quantize == "int16x8":
            float_content = _converter(version_dir, names, "none").convert()
            content = _int16x8(float_content, saved_model, images, labels)
        else:
            converter = _converter(version_dir, names, quantize)
            if quantize == "int8":
                converter.representative_dataset = _representative_dataset(saved_model, images, labels)
            content = converter.convert()
    content = compact(content, strip_names)
    path = tflite_path(version_dir, quantize)
    raise_if_pressed()  # before an earlier file of the same mode is replaced
    write_atomically(path, lambda partial: partial.write_bytes(content))
    return path


def _converter(version_dir, signature_names, quantize):
    """A `TFLiteConverter` for the named signatures, set up for `quantize` (int8 still needs data)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(version_dir), signature_keys=signature_names)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def _int16x8(float_content, saved_model, images, labels):
    """The float model quantised by LiteRT's quantizer: int8 weights, int16 activations.

    LiteRT's quantizer rather than the TFLite converter: the converter's 16x8
    mode corrupts weights that several signatures share (each signature's
    pass requantises them; latents off by 1.7 on MNIST). Inputs and outputs
    stay float32, as in every other mode.
    """
    from ai_edge_quantizer import algorithm_manager, calibrator, qtyping, quantizer, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    recipe = recipe_manager.RecipeManager()
    recipe.add_static_config(
        regex=".*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        activation_num_bits=16,
        weight_num_bits=8,
    )
    # Float: the inputs and outputs, and the reductions over a whole image
    # (the score's mean), which LiteRT's int16 kernels sum in int32: past
    # about 79,000 values (256x256x3) the sum wrapped, and an anomalous
    # image scored -0.12 where the SavedModel said 0.14.
    operation = qtyping.TFLOperationName
    for name in (operation.INPUT, operation.OUTPUT, operation.MEAN, operation.SUM):
        recipe.add_quantization_config(
            regex=".*", operation_name=name, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE
        )
    # Its calibration keeps every intermediate tensor, and LiteRT warns of it.
    warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
    model = quantizer.Quantizer(float_content)
    model.load_quantization_recipe(recipe.get_quantization_recipe())
    # Each tensor's range over all calibration images: the quantizer's own
    # calibration keeps a moving average of the batches' ranges, which
    # narrows as batches are added and clips the extremes (a VAE's
    # reconstructions were off by 0.13 with 5,000 calibration images).
    calibration = calibrator.Calibrator(
        _seeded_random_ops(float_content),
        num_threads=os.cpu_count() or 1,
        qsv_update_func=qsv_utils.min_max_update,
    )
    calibration.calibrate(_calibration_batches(saved_model, images, labels), recipe)
    ranges = _widened(calibration.get_model_qsvs())
    quantized = model.quantize(ranges, enable_progress_report=False).quantized_model
    return _output_shapes_from(float_content, quantized)


def _seeded_random_ops(float_content):
    """The float model with its unseeded random ops drawing from `CALIBRATION_SEED`, to calibrate on.

    LiteRT seeds an op without a seed from the device, so `sample`'s
    ranges, calibrated on its draws, differed from one conversion of the
    same export to the next (its prior draws' range by 20%), and so did the
    files. The file written keeps the unseeded ops: `sample` still draws
    afresh on every call, as the SavedModel's does.
    """
    model = model_object(float_content)
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            options = operator.builtinOptions
            if isinstance(options, schema.RandomOptionsT) and not (options.seed or options.seed2):
                options.seed = options.seed2 = CALIBRATION_SEED
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _output_shapes_from(float_content, quantized_content):
    """The quantized model with the float model's output shape signatures.

    LiteRT's quantizer writes outputs with a batch of 1 where the float
    model has a dynamic batch; they still run at any batch, but the file's
    signatures (its serving contract) would say otherwise.
    """
    reference = flatbuffer_utils.convert_bytearray_to_object(bytearray(float_content))
    model = model_object(quantized_content)
    shapes = {}
    for signature in reference.signatureDefs:
        tensors = reference.subgraphs[signature.subgraphIndex].tensors
        for output in signature.outputs:
            shapes[signature.signatureKey, output.name] = tensors[output.tensorIndex].shapeSignature
    for signature in model.signatureDefs:
        tensors = model.subgraphs[signature.subgraphIndex].tensors
        for output in signature.outputs:
            tensors[output.tensorIndex].shapeSignature = shapes[signature.signatureKey, output.name]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _calibration_batches(saved_model, images, labels, batch_size=64):
    """`{signature: [inputs, ...]}` from the calibration images, as LiteRT's quantizer takes them.

    A count (the VAE's `num_samples`) is the batch's size, so `sample` is
    calibrated on as many prior draws as there are images, as for int8: at
    one per batch, 500 images gave it 7, and its range (widened) cut the
    VAE's draws beyond 2.7-3.3 standard deviations, by conversion (5.0 now).
    """
    contract = Contract.from_saved_model(saved_model)
    encode = saved_model.signatures["encode"]
    parts = np.array_split(np.arange(len(images)), max(1, len(images) // batch_size))
    return {
        name: [
            {
                key: np.asarray(value)
                for key, value in example_inputs(
                    signature,
                    tf.constant(images[part]),
                    encode,
                    None if labels is None else labels[part],
                    count=len(part),
                ).items()
            }
            for part in parts
        ]
        for name, signature in contract.signatures.items()
    }


def _widened(ranges):
    """Calibrated ranges widened by `INT16_RANGE_MARGIN`.

    16-bit activations have resolution to spare (the margin costs a quarter
    of a bit), and without it values just beyond the calibration images'
    extremes clip: on MNIST a conv model's latents were off by 0.32 where a
    few test images exceeded the calibrated maximum.
    """
    for tensor_range in ranges.values():
        if "min" in tensor_range and "max" in tensor_range:
            low, high = np.asarray(tensor_range["min"]), np.asarray(tensor_range["max"])
            tensor_range["min"] = np.minimum(low, low * INT16_RANGE_MARGIN)
            tensor_range["max"] = np.maximum(high, high * INT16_RANGE_MARGIN)
    return ranges


def max_differences(path, images, batch_size=500, verbose=False, labels=None):
    """`{signature: {output: max |LiteRT - SavedModel|}}` of a converted file against the export beside it.

    See `aekeras.signatures.max_differences`.
    """
    path = Path(path)
    saved_model = export.load(path.parent)
    runner = Runner(path)
    return max_differences_from(saved_model, runner, images, "LiteRT", batch_size, verbose, labels)


def _interpreter(path):
    """A LiteRT interpreter of the file at `path`.

    Raises:
        FileNotFoundError: where there is no file.
        ModelFileError: for a file LiteRT cannot read (empty, cut short,
            not a .tflite file): LiteRT's own ValueError names no file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a .tflite file written by `aekeras tflite`)")
    try:
        return Interpreter(model_path=str(path))
    except ValueError as e:
        reason = first_line(
            str(e).replace(".The", ". The"), type(e).__name__
        )  # LiteRT runs two sentences together
        raise ModelFileError(
            f"{path}: not a readable .tflite file ({reason}); expected one written by `aekeras tflite`"
        ) from None


class Runner:
    """Runs a converted file's signatures with the LiteRT interpreter.

    Every call is checked against the file's own signatures first (names,
    shapes, dtypes, images on [0, 1]): LiteRT itself would resize its
    inputs to whatever it is given.

    Args:
        path: a `.tflite` file written by `convert`.

    Raises:
        FileNotFoundError: where there is no file.
        ModelFileError: for a file LiteRT cannot read (empty, cut short, garbled).

    Example:

    >>> runner = Runner("saved_models/dense/1/dense-int8.tflite")
    >>> runner("serving_default", images=images)["reconstruction"]
    """

    def __init__(self, path):
        self.path = Path(path)
        self.interpreter = _interpreter(self.path)
        self.signatures = self.interpreter.get_signature_list()
        # The export's label and codebook counts, where the file lies in its version folder.
        self.contract = Contract.from_tflite(self.interpreter, read_value_counts(self.path.parent))
        self._runners = {}

    def quantized_tensors(self):
        """How many of the file's tensors hold 8-bit integers (weights or activations); 0 for a float file."""
        return sum(detail["dtype"] == np.int8 for detail in self.interpreter.get_tensor_details())

    def __call__(self, signature_name="serving_default", **inputs):
        arrays = self.contract.check(signature_name, inputs)
        if signature_name not in self._runners:
            self._runners[signature_name] = self.interpreter.get_signature_runner(signature_name)
        return self._runners[signature_name](**arrays)

    def reconstruction_errors(self, images, batch_size=256, verbose=False, labels=None):
        """Per-image MSE on [0, 1] of `serving_default` reconstructions (`verbose`: show progress).

        `labels`: the images' labels, for models that read them.
        """
        starts = range(0, len(images), batch_size)
        outputs = [
            self("serving_default", **batch_inputs(images, labels, i, batch_size))["reconstruction"]
            for i in tracked(starts, len(starts), "LiteRT on the test images (batches)", verbose)
        ]
        return np.asarray(losses.squared_error(images, np.concatenate(outputs)))

    def reconstruction_mse(self, images, batch_size=256, verbose=False, labels=None):
        """Mean squared error of `serving_default` reconstructions on [0, 1] images."""
        return float(np.mean(self.reconstruction_errors(images, batch_size, verbose, labels)))
