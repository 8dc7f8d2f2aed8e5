"""The serving contract: the signatures an export offers, described once.

`endpoints(model)` gives the functions every export format serves, built
from the model itself (its image spec, its code shape, and the endpoints a
variant adds); `Contract` describes their named inputs and outputs, and is
read back the same way from a SavedModel (`Contract.from_saved_model`) and
from a LiteRT file (`Contract.from_tflite`). `Contract.check` refuses
requests that do not fit, with one line naming the signature and what it
expects. Images are float32 on [0, 1] at every signature, whatever scale the
model computes in.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from aekeras import losses
from aekeras.data.spec import UNIT_RANGE
from aekeras.errors import ModelFileError
from aekeras.progress import tracked

IMAGE_INPUT = "images"
LABEL_INPUT = "labels"
INT32_MAX = 2**31 - 1  # integer inputs are sent as int32
# Where an export records its `Contract.value_counts`.
VALUE_COUNTS_FILE = "assets.extra/aekeras_value_counts.json"
# Random ops whose names do not say "Random": a signature holding any of
# these, or an op named "...Random...", draws afresh every call (`draws_random_numbers`).
_RANDOM_OPS = frozenset(
    {
        "Multinomial",
        "StatelessMultinomial",
        "TruncatedNormal",
        "ParameterizedTruncatedNormal",
        "StatelessTruncatedNormal",
        "StatelessTruncatedNormalV2",
    }
)
_DTYPES = {"float32": np.float32, "int32": np.int32}
# Inputs that take codes as `encode` gives them, under the same names.
CODE_INPUTS = ("latent", "indices")


class ServingError(ValueError):
    """A request that does not fit the signature it names."""


def endpoints(model):
    """The serving functions of `model`: `{name: (function, {input: tf.TensorSpec})}`.

    - `serving_default`: `images` -> `reconstruction`, and `score`, the
      per-example mean squared reconstruction error on [0, 1] (for anomaly
      detection).
    - `encode`: `images` -> `latent` (and what the variant adds, such as the
      VAE's `z_mean` and `z_log_var`).
    - `decode`: `latent` -> `images`.
    - the variant's own (`model.serving_endpoints()`, such as the VAE's
      `sample`).

    A model that reads class labels (`model.conditioned`) takes `labels`,
    int32 class indices, one per example, beside the images or codes of
    each. Every batch dimension is dynamic; every other one is the model's.
    Functions take their inputs in the order of their specs.
    """
    spec = model.image_spec
    latent_shape = tuple(model.code_shape((None, *spec.shape)))
    conditions = {LABEL_INPUT: label_spec()} if model.conditioned else {}

    def model_inputs(images):
        # A wrong shape fails here, in one op, instead of deep in a layer
        # (where oneDNN convolutions can abort the whole server process).
        return spec.to_model_scale(tf.ensure_shape(images, (None, *spec.shape)))

    def named(condition_values):
        return dict(zip(conditions, condition_values, strict=True))

    def decode_latent(latent, condition_values):
        latent = tf.ensure_shape(latent, latent_shape)
        return spec.to_unit_scale(model.decode(latent, **named(condition_values)))

    def serving_default(images, *condition_values):
        codes = model.encode(model_inputs(images), **named(condition_values))
        reconstruction = decode_latent(codes, condition_values)
        return {"reconstruction": reconstruction, "score": losses.squared_error(images, reconstruction)}

    def encode(images, *condition_values):
        return model.encode_outputs(model_inputs(images), **named(condition_values))

    def decode(latent, *condition_values):
        return {"images": decode_latent(latent, condition_values)}

    images = {IMAGE_INPUT: tf.TensorSpec((None, *spec.shape), tf.float32, name=IMAGE_INPUT), **conditions}
    latent = {"latent": tf.TensorSpec(latent_shape, tf.float32, name="latent"), **conditions}
    found = {
        "serving_default": (serving_default, images),
        "encode": (encode, images),
        "decode": (decode, latent),
    }
    found.update(model.serving_endpoints())
    return found


def batch_inputs(images, labels, start, batch_size):
    """A signature's `images` (and `labels`, where given) for one batch from `start`."""
    inputs = {IMAGE_INPUT: images[start : start + batch_size]}
    if labels is not None:
        inputs[LABEL_INPUT] = np.asarray(labels[start : start + batch_size], np.int32)
    return inputs


def takes_labels(contract, signature_name="serving_default"):
    """Whether a signature of `contract` takes `labels` (a conditioned model's)."""
    return any(t.name == LABEL_INPUT for t in contract.signature(signature_name).inputs)


def label_spec():
    """The `labels` input of a conditioned model's signatures: one int32 class index per example."""
    return tf.TensorSpec((None,), tf.int32, name=LABEL_INPUT)


def draws_random_numbers(function):
    """Whether a SavedModel's signature function holds a random op (in itself or a function it calls).

    Such a signature (the VAE's `sample`, or any a variant adds) answers
    each call with fresh draws, so no two formats give the same values.
    """
    graph = function.graph.as_graph_def()
    ops = {node.op for node in graph.node}
    ops.update(node.op for library_function in graph.library.function for node in library_function.node_def)
    return any("Random" in op or op in _RANDOM_OPS for op in ops)


def _fits(tensor, value):
    """Whether `value` (a tensor) has the dtype and shape of a batched input `tensor` (a `TensorInfo`)."""
    shape = tuple(value.shape)
    return (
        tensor.dtype == value.dtype.name
        and tensor.shape is not None
        and len(tensor.shape) == len(shape)
        and all(d is None or d == n for d, n in zip(tensor.shape[1:], shape[1:], strict=True))
    )


def example_inputs(signature, images, encode, labels=None, count=1):
    """Inputs for one signature made from an image batch: codes from `encode`, counts of `count`.

    Inputs are known by name (`images`, `labels`, `encode`'s outputs such
    as `latent` and `indices`, scalars), else by dtype and shape: a
    variant's own float input of the image shape takes the images, one of
    the shape of an `encode` output that output (so a signature such as
    `blend(start, end)` is calibrated and compared too). `labels` (one per
    image) are needed where the signature takes them. Used to calibrate and
    to compare export formats on the same real images.
    """
    names = {tensor.name for tensor in signature.inputs}
    conditions = {}
    if LABEL_INPUT in names:
        if labels is None:
            raise ValueError(f"signature {signature.name!r} takes labels: pass them with the images")
        conditions[LABEL_INPUT] = tf.constant(np.asarray(labels, np.int32))
    codes = None
    values = {}
    for tensor in signature.inputs:
        if tensor.name == IMAGE_INPUT:
            values[tensor.name] = images
        elif tensor.name == LABEL_INPUT:
            values[tensor.name] = conditions[LABEL_INPUT]
        elif tensor.shape == ():  # a count, such as the VAE's num_samples
            values[tensor.name] = tf.constant(count, tensor.dtype)
        elif tensor.name not in CODE_INPUTS and _fits(tensor, tf.convert_to_tensor(images)):
            values[tensor.name] = images
        else:
            if codes is None:
                codes = encode(images=images, **conditions)
            # Codes, as `encode` gives them: by name (`latent`, `indices`), else by dtype and shape.
            code = codes.get(tensor.name) if tensor.name in CODE_INPUTS else None
            if code is None:
                code = next((c for c in codes.values() if _fits(tensor, c)), None)
            if code is None:
                raise ValueError(f"cannot make input {tensor.describe()} of {signature.name!r} from images")
            values[tensor.name] = code
    return values


class Differences(dict):
    """`{signature name: {output name: max |format - SavedModel|}}`, and the codebook picks that differ.

    `picks_differ`: the share of `encode`'s integer outputs (a VQ-VAE's
    codebook indices) that differ from the SavedModel's; `images_left_out`:
    the images with any such difference, which the signatures that take
    images were not compared on. Both 0 where `encode` gives no integers.
    `reconstruction_mse`: `(the format's, the SavedModel's)` mean squared
    error on [0, 1] of `serving_default`'s reconstructions of every image,
    from the calls compared (the format's taken of its reconstructions, as
    `aekeras.tflite.Runner.reconstruction_mse` takes it; the SavedModel's
    from its `score`, as `aekeras.serving.reconstruction_mse`).
    """

    def __init__(self, largest, images_left_out=0, picks_differ=0.0, reconstruction_mse=None):
        super().__init__(largest)
        self.images_left_out = images_left_out
        self.picks_differ = picks_differ
        self.reconstruction_mse = reconstruction_mse


def max_differences(saved_model, runner, images, format_name, batch_size=500, verbose=False, labels=None):
    """Largest absolute difference between another format's outputs and the SavedModel's, per signature.

    Every deterministic signature runs on `images` (codes for `decode`
    from the SavedModel's `encode`); signatures that draw random numbers
    (`draws_random_numbers`, such as the VAE's `sample`) cannot be compared
    value by value and are left out, as are integer outputs. Where
    `encode` gives integer codes (a VQ-VAE's codebook picks), an image
    whose picks differ in the other format is left out of the signatures
    that take images: a pick flips where two codebook vectors lie at
    near-equal distances, whichever way each runtime's rounding orders
    them, and the flip moves a whole code vector and every pixel decoded
    from it, which says which vectors were tied, not how close the
    conversion is. The result counts them (`Differences`), and a
    conversion that flips many picks shows there.

    Args:
        saved_model: the export, as loaded by `tf.saved_model.load`.
        runner: callable `runner(signature_name, **inputs) -> {output: array}`
            (`aekeras.tflite.Runner`, `aekeras.onnx.Runner`).
        images: float32 test images on [0, 1].
        format_name: names the format in the progress lines.
        batch_size: images per call of each signature.
        verbose: show progress, one step per batch, for each signature.
        labels: the images' labels, for models that read them.

    Returns:
        `Differences`: `{signature name: {output name: max |format - SavedModel|}}`.
    """
    contract = Contract.from_saved_model(saved_model)
    contract.check("encode", batch_inputs(images, labels, 0, len(images)))  # one line for wrong images
    encode = saved_model.signatures["encode"]
    same_picks, picks_differ = _same_picks(contract, encode, runner, images, labels, batch_size)
    differences, reconstruction_mse = {}, None
    for name, signature in contract.signatures.items():
        if draws_random_numbers(saved_model.signatures[name]):
            continue
        progress = (f"{format_name} {name} against the SavedModel (batches)", verbose)
        differences[name], squared_errors = _compare_signature(
            saved_model, runner, signature, images, labels, same_picks, batch_size, progress
        )
        if squared_errors is not None:
            reconstruction_mse = tuple(float(np.mean(np.concatenate(errors))) for errors in squared_errors)
    return Differences(differences, int(np.sum(~same_picks)), picks_differ, reconstruction_mse)


def _compare_signature(saved_model, runner, signature, images, labels, same_picks, batch_size, progress):
    """`({output: max |format - SavedModel|}, squared errors)` of one signature, run batch by batch on both.

    The squared errors are `serving_default`'s, per image: `([the
    format's], [the SavedModel's])` by batch, of every image (picks that
    differ left in); None for the other signatures. `progress`:
    `(description, shown)`.
    """
    encode = saved_model.signatures["encode"]
    takes_images = any(tensor.name == IMAGE_INPUT for tensor in signature.inputs)
    squared_errors = ([], []) if signature.name == "serving_default" else None
    largest = {}
    starts = range(0, len(images), batch_size)
    for start in tracked(starts, len(starts), *progress):
        batch = tf.constant(images[start : start + batch_size])
        batch_labels = None if labels is None else labels[start : start + batch_size]
        inputs = {k: np.asarray(v) for k, v in example_inputs(signature, batch, encode, batch_labels).items()}
        expected = saved_model.signatures[signature.name](**inputs)
        got = runner(signature.name, **inputs)
        if squared_errors is not None:
            squared_errors[0].append(
                np.asarray(losses.squared_error(inputs[IMAGE_INPUT], got["reconstruction"]))
            )
            squared_errors[1].append(expected["score"].numpy())
        compared = same_picks[start : start + batch_size] if takes_images else slice(None)
        for key in (k for k in got if np.issubdtype(got[k].dtype, np.floating)):
            difference = np.abs(got[key] - expected[key].numpy())[compared]
            largest[key] = max(largest.get(key, 0.0), float(np.max(difference, initial=0.0)))
    return largest, squared_errors


def _same_picks(contract, encode, runner, images, labels, batch_size):
    """`(per image: whether every integer output of the format's `encode` is the SavedModel's, share that differ)`.

    Every image agrees, and none differ, where `encode` gives no integers.
    """
    integers = [o.name for o in contract.signature("encode").outputs if o.dtype.startswith("int")]
    same = np.ones(len(images), bool)
    differing = total = 0
    for start in range(0, len(images) if integers else 0, batch_size):
        inputs = batch_inputs(images, labels, start, batch_size)
        got, expected = runner("encode", **inputs), encode(**{k: tf.constant(v) for k, v in inputs.items()})
        for name in integers:
            equal = got[name] == expected[name].numpy()
            differing, total = differing + int(np.sum(~equal)), total + equal.size
            same[start : start + len(equal)] &= equal.reshape(len(equal), -1).all(axis=1)
    return same, differing / max(total, 1)


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One named input or output: dtype and shape (None: any size)."""

    name: str
    dtype: str
    shape: tuple

    def describe(self):
        if self.shape is None:
            return f"{self.name}: {self.dtype} [batch, ...]"
        dims = ", ".join(
            "batch" if i == 0 and d is None else "any" if d is None else str(d)
            for i, d in enumerate(self.shape)
        )
        return f"{self.name}: {self.dtype} [{dims}]"

    @classmethod
    def of(cls, name, dtype, shape):
        dims = tuple(None if d is None or d < 0 else int(d) for d in shape)
        return cls(name, tf.as_dtype(dtype).name, dims)


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    inputs: tuple
    outputs: tuple

    def expects(self):
        return f"signature {self.name!r} expects " + ", ".join(i.describe() for i in self.inputs)


class Contract:
    """The signatures of an export: names, dtypes and shapes of inputs and outputs.

    `value_counts`: `{input name: how many values it takes}` for the integer
    inputs whose range the model fixes (a conditional VAE's `labels`, its
    class count; a VQ-VAE's `indices`, its codebook size), where known:
    the export records them in `VALUE_COUNTS_FILE`. Equality compares the
    signatures only, as LiteRT and ONNX files do not record the counts.
    """

    def __init__(self, signatures, value_counts=None):
        self.signatures = dict(signatures)
        self.value_counts = dict(value_counts or {})

    def __eq__(self, other):
        return isinstance(other, Contract) and self.signatures == other.signatures

    def __repr__(self):
        return f"Contract({sorted(self.signatures)})"

    @classmethod
    def for_model(cls, model):
        """The contract the model's export will have (each endpoint traced once)."""
        signatures = {}
        for name, (function, inputs) in endpoints(model).items():
            concrete = tf.function(function).get_concrete_function(*inputs.values())
            outputs = concrete.structured_outputs
            signatures[name] = Signature(
                name,
                tuple(TensorInfo.of(k, s.dtype, s.shape) for k, s in sorted(inputs.items())),
                tuple(TensorInfo.of(k, v.dtype, v.shape) for k, v in sorted(outputs.items())),
            )
        return cls(signatures, model.input_value_counts())

    @classmethod
    def from_saved_model(cls, loaded, version_dir=None):
        """The contract of a SavedModel loaded with `tf.saved_model.load` (its value counts read from `version_dir`)."""
        signatures = {}
        for name, function in loaded.signatures.items():
            _, inputs = function.structured_input_signature
            signatures[name] = Signature(
                name,
                tuple(TensorInfo.of(k, s.dtype, s.shape) for k, s in sorted(inputs.items())),
                tuple(
                    TensorInfo.of(k, s.dtype, s.shape) for k, s in sorted(function.structured_outputs.items())
                ),
            )
        return cls(signatures, None if version_dir is None else read_value_counts(version_dir))

    @classmethod
    def from_tflite(cls, interpreter, value_counts=None):
        """The contract of a LiteRT interpreter's signature runners (the file records no `value_counts`)."""
        signatures = {}
        for name in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(name)
            describe = lambda details: tuple(  # noqa: E731
                TensorInfo.of(k, d["dtype"], d["shape_signature"]) for k, d in sorted(details.items())
            )
            signatures[name] = Signature(
                name, describe(runner.get_input_details()), describe(runner.get_output_details())
            )
        return cls(signatures, value_counts)

    @classmethod
    def from_onnx(cls, sessions, value_counts=None):
        """The contract of onnxruntime sessions, `{signature name: InferenceSession}` (the files record no `value_counts`)."""
        dtypes = {"tensor(float)": "float32", "tensor(int32)": "int32", "tensor(int64)": "int64"}

        def describe(args):
            return tuple(
                TensorInfo.of(a.name, dtypes[a.type], [d if isinstance(d, int) else -1 for d in a.shape])
                for a in sorted(args, key=lambda a: a.name)
            )

        return cls(
            {
                name: Signature(name, describe(session.get_inputs()), describe(session.get_outputs()))
                for name, session in sessions.items()
            },
            value_counts,
        )

    def signature(self, name):
        if name not in self.signatures:
            raise ServingError(f"unknown signature {name!r} (this model serves {sorted(self.signatures)})")
        return self.signatures[name]

    def check(self, signature_name, inputs):
        """Returns `inputs` as numpy arrays of the signature's dtypes, or raises ServingError.

        Refused, with one line naming the signature and what it expects: an
        unknown signature, a missing or extra input, a wrong rank or size, an
        empty batch, a value of the wrong kind (floats are sent as float32,
        whatever their precision; integers as int32), NaN or infinite values
        (int8 models would answer them with plausible numbers), images
        outside [0, 1] (such as 0-255 pixels), and batched inputs of different
        sizes (a conditioned model's images and labels).
        """
        signature = self.signature(signature_name)
        specs = {i.name: i for i in signature.inputs}
        if set(inputs) != set(specs):
            raise ServingError(f"{signature.expects()}; got inputs {sorted(inputs)}")
        arrays = {
            name: _check_one(signature, specs[name], value, self.value_counts.get(name))
            for name, value in inputs.items()
        }
        batched = [name for name, spec in specs.items() if spec.shape is None or spec.shape[:1] == (None,)]
        batches = {name: len(arrays[name]) for name in batched}
        if len(set(batches.values())) > 1:
            sizes = ", ".join(f"{name} {size}" for name, size in sorted(batches.items()))
            raise ServingError(
                f"{signature.expects()}; got batches of different sizes ({sizes}): one of each per example"
            )
        return arrays

    def differences(self, other):
        """One phrase per signature, input or output that differs from `other`'s."""
        changes = []
        for name in sorted(set(self.signatures) | set(other.signatures)):
            mine, theirs = self.signatures.get(name), other.signatures.get(name)
            if mine is None or theirs is None:
                changes.append(f"signature {name!r} {'added' if mine is None else 'removed'}")
                continue
            for kind in ("inputs", "outputs"):
                old = {t.name: t for t in getattr(mine, kind)}
                new = {t.name: t for t in getattr(theirs, kind)}
                for key in sorted(set(old) | set(new)):
                    if old.get(key) != new.get(key):
                        before = old[key].describe() if key in old else "none"
                        after = new[key].describe() if key in new else "none"
                        changes.append(f"{name} {kind[:-1]} {before} -> {after}")
        for key in sorted(set(self.value_counts) & set(other.value_counts)):  # unknown in older exports
            if self.value_counts[key] != other.value_counts[key]:
                changes.append(f"{key} takes {self.value_counts[key]} values -> {other.value_counts[key]}")
        return changes


def write_value_counts(version_dir, value_counts):
    """Records a model's `input_value_counts` in an export (`VALUE_COUNTS_FILE`; TF Serving ignores `assets.extra`)."""
    path = Path(version_dir) / VALUE_COUNTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value_counts, sort_keys=True) + "\n")


def read_value_counts(version_dir):
    """The value counts an export recorded (`write_value_counts`); {} for an older export.

    Raises:
        ModelFileError: where the file is not the `{input: count}` it writes
            (garbled, edited): the range of the inputs it guards is unknown.
    """
    path = Path(version_dir) / VALUE_COUNTS_FILE
    damaged = ModelFileError(
        f"{path}: damaged (expected the JSON object of input names and value counts it writes)"
    )
    try:
        counts = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError:  # not JSON, or not UTF-8
        raise damaged from None
    if not isinstance(counts, dict) or not all(type(v) is int and v > 0 for v in counts.values()):
        raise damaged
    return counts


def _check_one(signature, spec, value, value_count=None):
    array = np.asarray(value)
    floating = np.issubdtype(array.dtype, np.floating)
    fits_kind = floating if spec.dtype.startswith("float") else np.issubdtype(array.dtype, np.integer)
    if spec.shape is None:  # any shape with a batch dimension
        fits_shape = array.ndim > 0
    else:
        fits_shape = array.ndim == len(spec.shape) and all(
            d is None or d == n for d, n in zip(spec.shape, array.shape, strict=True)
        )
    if not (fits_kind and fits_shape):
        raise ServingError(f"{signature.expects()}; got {spec.name}: {array.dtype} {list(array.shape)}")
    if (spec.shape is None or (spec.shape and spec.shape[0] is None)) and len(array) == 0:
        raise ServingError(f"{signature.expects()}; got an empty batch (send at least one example)")
    highest = INT32_MAX if value_count is None else value_count - 1
    # A count (num_samples) of 0 is an empty request, refused as an empty batch is;
    # a scalar the model gives a value count is an index into them (from 0).
    lowest = 1 if spec.shape == () and value_count is None else 0
    if not floating and array.size and (array.min() < lowest or array.max() > highest):
        # Labels, codebook indices, counts: onnxruntime's Gather reads -1 as
        # the last class or codebook vector, and int32 wraps larger values.
        raise ServingError(
            f"signature {signature.name!r} expects {spec.name} from {lowest} to {highest}; got values from "
            f"{array.min()} to {array.max()}"
        )
    array = array.astype(_DTYPES.get(spec.dtype, array.dtype))
    if floating:
        bad = ~np.isfinite(array).reshape(len(array), -1).all(axis=1) if array.ndim else ~np.isfinite(array)
        if bad.any():
            raise ServingError(
                f"signature {signature.name!r} got NaN or infinite values in {spec.name} ({int(bad.sum())} of "
                f"{bad.size} examples); a model's outputs for them are meaningless, and quantised ones look "
                "plausible, so they are refused"
            )
    if (
        spec.name == IMAGE_INPUT
        and array.size
        and (array.min() < UNIT_RANGE[0] or array.max() > UNIT_RANGE[1])
    ):
        raise ServingError(
            f"signature {signature.name!r} expects images on [0, 1]; got values from "
            f"{array.min():g} to {array.max():g} (divide 0-255 pixels by 255)"
        )
    return array
