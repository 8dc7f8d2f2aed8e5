"""Requests for TF Serving, and an in-process stand-in that answers them.

Build a REST `:predict` body with `rest_request` or a gRPC `PredictRequest`
with `grpc_request`, send it to `tensorflow_model_server`, and read the
answer back into numpy arrays with `parse_rest_response` or
`parse_grpc_response`. `LocalServer` answers the same requests in-process
from an exported SavedModel, loaded as TF Serving loads it, for tests and
for debugging without the server binary.

Inputs are checked before anything is sent: a wrong name, shape or dtype
raises `ServingError` naming the signature and what it expects, and so does
an empty batch (REST has no form for it, and TensorFlow's oneDNN CPU kernels
fail on a convolution of one). NaN and infinite values are sent as they are
(JSON `NaN`, `Infinity`, which TF Serving reads and writes).
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from aekeras.data import IMAGE_SHAPE
from aekeras.export import versions

# The inputs of the exported signatures: name -> (shape, dtype kind); None
# is any size. Floating inputs are sent as float32, integers as int32.
SIGNATURE_INPUTS = {
    "serving_default": {"images": ((None, *IMAGE_SHAPE), "float")},
    "encode": {"images": ((None, *IMAGE_SHAPE), "float")},
    "decode": {"latent": ((None, None), "float")},
    "sample": {"num_samples": ((), "int")},
}
_DTYPES = {"float": np.float32, "int": np.int32}


class ServingError(ValueError):
    """A request that does not fit the signature it names."""


def _describe(spec):
    shape, kind = spec
    dims = ", ".join("batch" if i == 0 and d is None else "any" if d is None else str(d)
                     for i, d in enumerate(shape))
    return f"{_DTYPES[kind].__name__} [{dims}]"


def _expected(signature_name, specs):
    inputs = ", ".join(f"{name}: {_describe(spec)}" for name, spec in specs.items())
    return f"signature {signature_name!r} expects {inputs}"


def check_inputs(signature_name, inputs, specs=None):
    """Returns `inputs` as numpy arrays of the signature's dtypes.

    Args:
        signature_name: the signature the inputs are for.
        inputs: dict of input name -> array-like.
        specs: name -> (shape, "float" or "int"); defaults to the aekeras
            signature of that name.

    Raises:
        ServingError: naming the signature and what it expects, for an
            unknown signature, a missing or extra input, a wrong rank or
            size, an empty batch, or a non-numeric or wrongly typed value.
    """
    if specs is None:
        if signature_name not in SIGNATURE_INPUTS:
            raise ServingError(
                f"unknown signature {signature_name!r} (expected one of {sorted(SIGNATURE_INPUTS)})"
            )
        specs = SIGNATURE_INPUTS[signature_name]
    if set(inputs) != set(specs):
        raise ServingError(f"{_expected(signature_name, specs)}; got inputs {sorted(inputs)}")
    arrays = {}
    for name, value in inputs.items():
        shape, kind = specs[name]
        array = np.asarray(value)
        fits_kind = (
            np.issubdtype(array.dtype, np.floating)
            if kind == "float"
            else np.issubdtype(array.dtype, np.integer)
        )
        fits_shape = array.ndim == len(shape) and all(
            d is None or d == n for d, n in zip(shape, array.shape)
        )
        if not (fits_kind and fits_shape):
            raise ServingError(
                f"{_expected(signature_name, specs)}; got {name}: "
                f"{array.dtype} {list(array.shape)}"
            )
        if shape and shape[0] is None and len(array) == 0:
            raise ServingError(
                f"{_expected(signature_name, specs)}; got an empty batch (send at least one example)"
            )
        arrays[name] = array.astype(_DTYPES[kind])
    return arrays


def rest_request(signature_name="serving_default", **inputs):
    """The JSON body (a dict) of a REST `:predict` request.

    Batched inputs go in the row format, `{"signature_name": ..., "instances":
    [{name: value}, ...]}`; a scalar input (the VAE's `num_samples`) in the
    columnar format, `{"signature_name": ..., "inputs": {name: value}}`.
    POST it as JSON to `http://host:8501/v1/models/<name>:predict`.
    """
    arrays = check_inputs(signature_name, inputs)
    if all(a.ndim > 0 for a in arrays.values()):
        batch = {len(a) for a in arrays.values()}.pop()
        instances = [{n: a[i].tolist() for n, a in arrays.items()} for i in range(batch)]
        return {"signature_name": signature_name, "instances": instances}
    return {"signature_name": signature_name, "inputs": {n: a.tolist() for n, a in arrays.items()}}


def parse_rest_response(body):
    """Reads a REST `:predict` response (dict or JSON text) into numpy arrays.

    Returns a dict of output name -> array; a response of one unnamed output
    (TF Serving drops the name when a signature has a single output) is
    returned as a dict with the key `"output"`.

    Raises:
        ServingError: if the server answered with an error.
    """
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    if "error" in body:
        raise ServingError(f"the server refused the request: {body['error']}")
    if "predictions" in body:
        rows = body["predictions"]
        if rows and isinstance(rows[0], dict):
            return {name: np.asarray([row[name] for row in rows], np.float32) for name in rows[0]}
        return {"output": np.asarray(rows, np.float32)}
    outputs = body["outputs"]
    if isinstance(outputs, dict):
        return {name: np.asarray(value, np.float32) for name, value in outputs.items()}
    return {"output": np.asarray(outputs, np.float32)}


def grpc_request(model_name, signature_name="serving_default", version=None, **inputs):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest`.

    Send it with `prediction_service_pb2_grpc.PredictionServiceStub(channel)
    .Predict(request)` to `host:8500`.
    """
    arrays = check_inputs(signature_name, inputs)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, array in arrays.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


def parse_grpc_response(response):
    """Reads a `PredictResponse` into a dict of output name -> numpy array."""
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


class LocalServer:
    """Answers TF Serving predict requests in-process from a SavedModel.

    The model is loaded as TF Serving loads it, `tf.saved_model.load(path,
    tags=["serve"])`, and its signatures are called by name. Given a model
    folder (`saved_models/<name>`), the highest version is served, as TF
    Serving's default version policy does.

    Args:
        path: a version folder, or a model folder holding version folders.

    Example:

    >>> server = LocalServer("saved_models/dense")
    >>> body = rest_request(images=images)
    >>> outputs = parse_rest_response(server.rest_predict(body))
    """

    def __init__(self, path):
        path = Path(path)
        found = versions(path)
        self.path = path / str(found[-1]) if found else path
        self.model = tf.saved_model.load(str(self.path), tags=["serve"])

    def signature_specs(self, signature_name):
        """The named inputs of a signature: name -> (shape, "float"/"int")."""
        if signature_name not in self.model.signatures:
            raise ServingError(
                f"unknown signature {signature_name!r} (this model serves "
                f"{sorted(self.model.signatures)})"
            )
        _, inputs = self.model.signatures[signature_name].structured_input_signature
        return {
            name: (tuple(spec.shape), "float" if spec.dtype.is_floating else "int")
            for name, spec in inputs.items()
        }

    def predict(self, signature_name="serving_default", **inputs):
        """Calls a signature by name; returns a dict of numpy outputs."""
        arrays = check_inputs(signature_name, inputs, self.signature_specs(signature_name))
        outputs = self.model.signatures[signature_name](
            **{name: tf.constant(array) for name, array in arrays.items()}
        )
        return {name: value.numpy() for name, value in outputs.items()}

    def rest_predict(self, body):
        """Answers a REST `:predict` body as TF Serving would (a dict)."""
        if isinstance(body, (str, bytes)):
            body = json.loads(body)
        signature_name = body.get("signature_name", "serving_default")
        if "instances" in body:
            instances = body["instances"]
            if not instances:
                raise ServingError('"instances" is empty: send at least one example')
            if not isinstance(instances[0], dict):
                (name,) = self.signature_specs(signature_name)
                instances = [{name: row} for row in instances]
            inputs = {n: np.asarray([row[n] for row in instances]) for n in instances[0]}
            outputs = self.predict(signature_name, **inputs)
            batch = len(instances)
            rows = [{n: v[i].tolist() for n, v in outputs.items()} for i in range(batch)]
            if len(outputs) == 1:
                rows = [next(iter(row.values())) for row in rows]
            return {"predictions": rows}
        if "inputs" in body:
            inputs = body["inputs"]
            if not isinstance(inputs, dict):
                (name,) = self.signature_specs(signature_name)
                inputs = {name: inputs}
            outputs = self.predict(signature_name, **inputs)
            values = {n: v.tolist() for n, v in outputs.items()}
            return {"outputs": values if len(values) > 1 else next(iter(values.values()))}
        raise ServingError('a REST :predict body needs "instances" or "inputs"')

    def grpc_predict(self, request):
        """Answers a `PredictRequest` as TF Serving would (a `PredictResponse`)."""
        signature_name = request.model_spec.signature_name or "serving_default"
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        outputs = self.predict(signature_name, **inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response
