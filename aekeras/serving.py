"""Requests for TF Serving, and an in-process stand-in that answers them.

Build a REST `:predict` body with `rest_request` or a gRPC `PredictRequest`
with `grpc_request`, send it to `tensorflow_model_server`, and read the
answer back into numpy arrays with `parse_rest_response` or
`parse_grpc_response`. `LocalServer` answers the same requests in-process
from an exported SavedModel, loaded as TF Serving loads it, for tests and
for debugging without the server binary.

Inputs are checked before anything is sent, against the export's own
`Contract` where one is given (`load_contract`): a wrong name, shape or
dtype raises `ServingError` naming the signature and what it expects, and so
do an empty batch (REST has no form for it, and TensorFlow's oneDNN CPU
kernels fail on a convolution of one), NaN or infinite values (the export
answers them with a NaN score, but int8 TFLite conversions with plausible
numbers) and images outside [0, 1].
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from aekeras.export import latest_version, load, version_number
from aekeras.progress import tracked
from aekeras.signatures import (
    IMAGE_INPUT,
    LABEL_INPUT,
    Contract,
    ServingError,
    Signature,
    TensorInfo,
    batch_inputs,
)

# The signatures aekeras exports serve (every export the first three, a
# variant also its own), for requests built without the export's own
# contract: names, dtypes and the [0, 1] image scale (shapes unchecked).
_IMAGES = TensorInfo(IMAGE_INPUT, "float32", None)
GENERIC_CONTRACT = Contract(
    {
        "serving_default": Signature("serving_default", (_IMAGES,), ()),
        "encode": Signature("encode", (_IMAGES,), ()),
        "decode": Signature("decode", (TensorInfo("latent", "float32", None),), ()),
        "sample": Signature("sample", (TensorInfo("num_samples", "int32", ()),), ()),
        "decode_indices": Signature("decode_indices", (TensorInfo("indices", "int32", None),), ()),
    }
)
# The same for a conditioned model's exports (the conditional VAE's): every
# signature also takes `labels`, and `sample` takes labels alone.
_LABELS = TensorInfo(LABEL_INPUT, "int32", (None,))
GENERIC_CONDITIONED_CONTRACT = Contract(
    {
        name: Signature(name, (*signature.inputs, _LABELS) if name != "sample" else (_LABELS,), ())
        for name, signature in GENERIC_CONTRACT.signatures.items()
    }
)


def version_folder(path):
    """The highest version folder under a model folder (`export.latest_version`), or `path` itself."""
    return latest_version(path) or Path(path)


def load_contract(path):
    """The `Contract` of an export (a version folder, or a model folder: its latest version)."""
    folder = version_folder(path)
    return Contract.from_saved_model(load(folder), folder)


def check_inputs(signature_name, inputs, contract=None):
    """Returns `inputs` as numpy arrays of the signature's dtypes.

    Args:
        signature_name: the signature the inputs are for.
        inputs: dict of input name -> array-like.
        contract: the export's `Contract` (see `load_contract`), which
            checks shapes too; by default only what every aekeras export
            shares is checked (with `labels` among the inputs, what every
            conditioned model's export shares).

    Raises:
        ServingError: naming the signature and what it expects.
    """
    if contract is None:
        contract = GENERIC_CONDITIONED_CONTRACT if LABEL_INPUT in inputs else GENERIC_CONTRACT
        if signature_name not in contract.signatures:
            # A variant's own signature: only the export's contract knows it.
            raise ServingError(
                f"signature {signature_name!r} is none of those every aekeras export shares "
                f"({sorted(contract.signatures)}); pass the export's own contract "
                "(contract=serving.load_contract(path)) to check its requests"
            )
    return contract.check(signature_name, inputs)


def rest_request(signature_name="serving_default", *, contract=None, **inputs):
    """The JSON body (a dict) of a REST `:predict` request.

    Batched inputs go in the row format, `{"signature_name": ..., "instances":
    [{name: value}, ...]}`; a scalar input (the VAE's `num_samples`) in the
    columnar format, `{"signature_name": ..., "inputs": {name: value}}`.
    POST it as JSON to `http://host:8501/v1/models/<name>:predict`.
    `contract` (from `load_contract`) checks the shapes as well.
    """
    arrays = check_inputs(signature_name, inputs, contract)
    if all(a.ndim > 0 for a in arrays.values()):
        batch = {len(a) for a in arrays.values()}.pop()
        instances = [{n: a[i].tolist() for n, a in arrays.items()} for i in range(batch)]
        return {"signature_name": signature_name, "instances": instances}
    return {"signature_name": signature_name, "inputs": {n: a.tolist() for n, a in arrays.items()}}


def parse_rest_response(body, signature_name="serving_default", *, contract=None):
    """Reads a REST `:predict` response (dict or JSON text) into numpy arrays.

    JSON carries neither dtypes nor, where a signature has a single output,
    its name (TF Serving's row format drops it). Given the export's
    `contract` (`load_contract`) and the request's `signature_name`, every
    output comes back under its own name in its own dtype (the VQ-VAE's
    int32 `indices`, ready for `decode_indices`), and a response whose
    outputs are not the signature's is refused. Without a contract, outputs
    are float32 and a single one is keyed `"output"`.

    Raises:
        ServingError: if the server answered with an error, or with other
            outputs than the contract's signature has.
    """
    body = _json_object(body, "the response")
    if "error" in body:
        raise ServingError(f"the server refused the request: {body['error']}")
    outputs = _rest_outputs(body)
    if contract is None:
        return {name: np.asarray(value, np.float32) for name, value in outputs.items()}
    return _as_signature_outputs(outputs, contract.signature(signature_name))


def _json_kind(value):
    """What a JSON value is, in JSON's words."""
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _json_object(body, what):
    """A REST body (dict, or JSON text) as a dict; ServingError where it is not a JSON object."""
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
            raise ServingError(f"{what} is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise ServingError(f"{what} must be a JSON object, got {_json_kind(body)}")
    return body


def _rest_outputs(body):
    """A REST response's outputs, `{name: nested lists}`; a single unnamed one as `"output"`."""
    if "predictions" in body:
        rows = body["predictions"]
        if not isinstance(rows, list):
            raise ServingError(f'"predictions" must be an array, got {_json_kind(rows)}')
        if rows and isinstance(rows[0], dict):
            names = set(rows[0])
            if any(not isinstance(row, dict) or set(row) != names for row in rows):
                raise ServingError(f'every one of "predictions" must name the same outputs ({sorted(names)})')
            return {name: [row[name] for row in rows] for name in rows[0]}
        return {"output": rows}
    if "outputs" not in body:
        raise ServingError(f'a REST :predict response has "predictions" or "outputs"; got {sorted(body)}')
    outputs = body["outputs"]
    return outputs if isinstance(outputs, dict) else {"output": outputs}


def _as_signature_outputs(outputs, signature):
    """`outputs` named and typed as `signature`'s, or ServingError where they are not its outputs."""
    expected = {tensor.name: np.dtype(tensor.dtype) for tensor in signature.outputs}
    if set(outputs) == {"output"} and len(expected) == 1:
        outputs = {next(iter(expected)): outputs["output"]}
    if set(outputs) != set(expected):
        raise ServingError(
            f"signature {signature.name!r} answers {sorted(expected)}; the server sent {sorted(outputs)} "
            "(is it serving another version of the model?)"
        )
    return {name: np.asarray(value, expected[name]) for name, value in outputs.items()}


def grpc_request(model_name, signature_name="serving_default", version=None, *, contract=None, **inputs):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest`.

    Send it with `prediction_service_pb2_grpc.PredictionServiceStub(channel)
    .Predict(request)` to `host:8500`. `contract` (from `load_contract`)
    checks the shapes as well.
    """
    arrays = check_inputs(signature_name, inputs, contract)
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
        self.path = version_folder(path)
        self.model = load(self.path)
        self.contract = Contract.from_saved_model(self.model, self.path)

    def input_names(self, signature_name):
        return [i.name for i in self.contract.signature(signature_name).inputs]

    def predict(self, signature_name="serving_default", **inputs):
        """Calls a signature by name; returns a dict of numpy outputs."""
        arrays = self.contract.check(signature_name, inputs)
        outputs = self.model.signatures[signature_name](
            **{name: tf.constant(array) for name, array in arrays.items()}
        )
        return {name: value.numpy() for name, value in outputs.items()}

    def rest_predict(self, body):
        """Answers a REST `:predict` body as TF Serving would (a dict).

        Raises:
            ServingError: for a body TF Serving would refuse (not JSON, not
                an object, no "instances" or "inputs", unnamed values for a
                signature of several inputs) and for inputs its signature
                does not take, in one line.
        """
        body = _json_object(body, "the request body")
        signature_name = body.get("signature_name", "serving_default")
        if not isinstance(signature_name, str):
            raise ServingError(f'"signature_name" must be a string, got {_json_kind(signature_name)}')
        if "instances" in body:
            return self._predict_rows(signature_name, body["instances"])
        if "inputs" in body:
            inputs = body["inputs"]
            if not isinstance(inputs, dict):
                inputs = {self._single_input(signature_name, '"inputs"'): inputs}
            outputs = self.predict(signature_name, **self._from_json(signature_name, inputs))
            values = {n: v.tolist() for n, v in outputs.items()}
            return {"outputs": values if len(values) > 1 else next(iter(values.values()))}
        raise ServingError('a REST :predict body needs "instances" or "inputs"')

    def _predict_rows(self, signature_name, instances):
        """The row format's answer: `{"predictions": [one per instance]}`."""
        if not isinstance(instances, list):
            raise ServingError(f'"instances" must be an array of examples, got {_json_kind(instances)}')
        if not instances:
            raise ServingError('"instances" is empty: send at least one example')
        if not isinstance(instances[0], dict):
            name = self._single_input(signature_name, '"instances"')
            instances = [{name: row} for row in instances]
        names = set(instances[0])
        if any(not isinstance(row, dict) or set(row) != names for row in instances):
            raise ServingError(f'every one of "instances" must name the same inputs ({sorted(names)})')
        inputs = self._from_json(signature_name, {n: [row[n] for row in instances] for n in names})
        outputs = self.predict(signature_name, **inputs)
        rows = [{n: v[i].tolist() for n, v in outputs.items()} for i in range(len(instances))]
        if len(outputs) == 1:
            rows = [next(iter(row.values())) for row in rows]
        return {"predictions": rows}

    def _single_input(self, signature_name, where):
        """The name of a signature's one input, for values sent without names."""
        names = self.input_names(signature_name)
        if len(names) != 1:
            raise ServingError(
                f"{self.contract.signature(signature_name).expects()}; {where} sent values without names: "
                "name each input"
            )
        return names[0]

    def _input_dtypes(self, signature_name):
        """`{input name: dtype}` of a signature, as the served contract says."""
        return {spec.name: spec.dtype for spec in self.contract.signature(signature_name).inputs}

    def _from_json(self, signature_name, values):
        """JSON values as TF Serving reads them (`_json_array`), `{input name: array}`."""
        dtypes = self._input_dtypes(signature_name)
        expects = self.contract.signature(signature_name).expects()
        # Values under names the signature lacks go as they came, for its check to name.
        return {
            name: _json_array(name, value, dtypes[name], expects) if name in dtypes else value
            for name, value in values.items()
        }

    def grpc_predict(self, request):
        """Answers a `PredictRequest` as TF Serving would (a `PredictResponse`).

        A request for another model name, or another version than this
        server's, is refused (TF Serving answers NOT_FOUND), so that tests
        built on it catch a client's wrong name or version.
        """
        spec = request.model_spec
        name, version = self.path.parent.name, version_number(self.path.name)
        if spec.name != name or (
            spec.HasField("version") and version is not None and spec.version.value != version
        ):
            asked = f"{spec.name!r}" + (f" version {spec.version.value}" if spec.HasField("version") else "")
            raise ServingError(f"no model {asked} here: this server serves {name!r} version {version}")
        signature_name = spec.signature_name or "serving_default"
        outputs = self.predict(signature_name, **self._from_protos(signature_name, request.inputs))
        if request.output_filter:
            unknown = sorted(set(request.output_filter) - set(outputs))
            if unknown:
                raise ServingError(
                    f"output_filter names {unknown}, not outputs of {signature_name!r} ({sorted(outputs)})"
                )
            outputs = {name: outputs[name] for name in request.output_filter}
        response = predict_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = name, signature_name
        if version is not None:
            response.model_spec.version.value = version
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def _from_protos(self, signature_name, protos):
        """A request's tensors; one of another dtype than its input's is refused, as TF Serving refuses it."""
        dtypes = self._input_dtypes(signature_name)
        for name, proto in protos.items():
            sent = tf.dtypes.as_dtype(proto.dtype).name
            if name in dtypes and sent != dtypes[name]:
                raise ServingError(
                    f"{name}: a {sent} tensor, where {signature_name!r} takes {dtypes[name]} (TF Serving answers "
                    "InvalidArgument)"
                )
        return {name: tf.make_ndarray(proto) for name, proto in protos.items()}


def _json_array(name, value, dtype, expects):
    """One input's JSON value as an array: numbers as a float input's dtype (`0` is a float32 0), as TF Serving reads them.

    Refused in one line: ragged rows, text, true/false, null, objects, and
    numbers beyond what the input's dtype holds (TF Serving would turn a
    float beyond float32's range into an infinite one).
    """
    try:
        array = np.asarray(value)
    except ValueError:  # NumPy refuses rows of different lengths
        raise ServingError(f"{expects}; got {name}: rows of different shapes") from None
    if array.dtype.kind in "fi" and _holds_true_or_false(value):  # NumPy reads true among numbers as 1
        raise ServingError(f"{expects}; got {name} with true/false among its values")
    if array.dtype == object:  # null, objects, or whole numbers beyond int64
        kinds = sorted({_json_kind(item) for item in array.flat} - {"a number"})
        if kinds or not dtype.startswith("float"):
            found = ", ".join(kinds) if kinds else "whole numbers beyond int64's range"
            raise ServingError(f"{expects}; got {name} with {found} among its values")
        array = array.astype(np.float64)
    if array.dtype.kind in "USb":
        kind = "true/false" if array.dtype.kind == "b" else "text"
        raise ServingError(f"{expects}; got {name}: {kind} values {list(array.shape)}")
    if dtype.startswith("float"):
        largest = np.finfo(dtype).max
        if np.any(np.isfinite(array) & (np.abs(array) > largest)):
            raise ServingError(f"{expects}; got {name} with values beyond {dtype}'s range (±{largest:.4g})")
        array = array.astype(dtype)
    return array


def _holds_true_or_false(value):
    """Whether JSON true/false is anywhere in `value`'s nested arrays."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, bool):
            return True
    return False


def reconstruction_mse(server, images, batch_size=1000, verbose=False, labels=None):
    """Mean squared error on [0, 1] of a `LocalServer`'s reconstructions (its `score`; `labels` where it reads them)."""
    starts = range(0, len(images), batch_size)
    scores = [
        server.predict(**batch_inputs(images, labels, i, batch_size))["score"]
        for i in tracked(starts, len(starts), "SavedModel on the test images (batches)", verbose)
    ]
    return float(np.mean(np.concatenate(scores)))
