"""Requests built by aekeras.serving, answered by the export as TF Serving loads it."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from test_case import IMAGE_ONLY_NAMES

from aekeras import serving
from aekeras.serving import LocalServer, ServingError


@pytest.fixture(scope="module")
def servers(exported_models):
    out, exported = exported_models
    return {name: LocalServer(out / name) for name in IMAGE_ONLY_NAMES}


def test_serves_the_latest_version(servers, exported_models):
    _, exported = exported_models
    assert servers["dense"].path == exported["dense"][1]


def test_reconstruction_mse_weighs_every_image_alike_in_a_short_last_batch(servers, digits):
    scores = servers["dense"].predict(images=digits[:150])["score"]
    mse = serving.reconstruction_mse(servers["dense"], digits[:150], batch_size=100)
    assert mse == pytest.approx(float(np.mean(scores)), rel=1e-6)
    # A mean of the two batches' means would weigh the last 50 images twice as much.
    assert mse != pytest.approx((np.mean(scores[:100]) + np.mean(scores[100:])) / 2, rel=1e-4)


def test_rest_round_trip(servers, digits):
    server = servers["dense"]
    body = serving.rest_request(images=digits[:4])
    assert body["signature_name"] == "serving_default" and len(body["instances"]) == 4
    wire = json.dumps(body)  # what goes over HTTP
    answer = serving.parse_rest_response(json.dumps(server.rest_predict(wire)))
    direct = server.predict(images=digits[:4])
    np.testing.assert_allclose(answer["reconstruction"], direct["reconstruction"], atol=1e-6)
    np.testing.assert_allclose(answer["score"], direct["score"], rtol=1e-5)


def test_rest_bodies_as_other_clients_write_them(servers, digits):
    """JavaScript and Go write 0.0 as 0: TF Serving reads JSON numbers as the input's dtype."""
    server = servers["dense"]
    binary = (digits[:2] > 0.5).astype(np.float32)
    as_integers = json.dumps({"instances": binary.astype(int).tolist()})
    answer = server.rest_predict(as_integers)["predictions"]
    np.testing.assert_allclose(
        [row["score"] for row in answer], server.predict(images=binary)["score"], rtol=1e-6
    )
    columnar = server.rest_predict({"inputs": {"images": binary.astype(int).tolist()}})["outputs"]
    np.testing.assert_allclose(columnar["score"], server.predict(images=binary)["score"], rtol=1e-6)
    # Malformed bodies get one ServingError, as TF Serving answers {"error": ...}, not a KeyError.
    rows = binary.tolist()
    with pytest.raises(ServingError, match=r'every one of "instances" must name the same inputs'):
        server.rest_predict({"instances": [{"images": rows[0]}, {"pixels": rows[1]}]})
    with pytest.raises(ServingError, match=r"got images: rows of different shapes$"):
        server.rest_predict({"instances": [rows[0], rows[1][:5]]})
    # JSON has no float64: a wrong shape is named as TF Serving reads the numbers, and text as text.
    expects = r"signature 'serving_default' expects images: float32 \[batch, 28, 28, 1\]; got images: "
    with pytest.raises(ServingError, match=expects + r"float32 \[2, 28, 28\]$"):
        server.rest_predict({"inputs": {"images": digits[:2, ..., 0].tolist()}})
    with pytest.raises(ServingError, match=expects + r"text values \[1, 28, 28, 1\]$"):
        server.rest_predict({"instances": np.full((1, 28, 28, 1), "0.5").tolist()})
    with pytest.raises(ServingError, match=expects + r"true/false values \[1, 28, 28, 1\]$"):
        server.rest_predict({"instances": binary[:1].astype(bool).tolist()})
    beyond_float32 = binary[:1].tolist()
    beyond_float32[0][3][3][0] = 1e39
    with pytest.raises(
        ServingError, match=r"; got images with values beyond float32's range \(±3.403e\+38\)$"
    ):
        server.rest_predict(json.dumps({"instances": beyond_float32}))
    beyond_int64 = binary[:1].tolist()
    beyond_int64[0][3][3][0] = 10**30  # a float input takes it, and refuses it as off the scale
    with pytest.raises(ServingError, match=r"expects images on \[0, 1\]; got values from 0 to 1e\+30"):
        server.rest_predict(json.dumps({"instances": beyond_int64}))


def test_rest_decode_and_vae_sample(servers, digits):
    latent = servers["vae"].predict("encode", images=digits[:3])["latent"]
    body = serving.rest_request("decode", latent=latent)
    images = serving.parse_rest_response(servers["vae"].rest_predict(body))["output"]
    assert images.shape == (3, 28, 28, 1)  # one output: TF Serving drops its name
    body = serving.rest_request("sample", num_samples=6)
    assert body == {"signature_name": "sample", "inputs": {"num_samples": 6}}
    samples = serving.parse_rest_response(servers["vae"].rest_predict(body))["output"]
    assert samples.shape == (6, 28, 28, 1)


def test_with_the_contract_rest_outputs_keep_their_names_and_dtypes(servers, exported_models, digits):
    out, _ = exported_models
    server, contract = servers["vqvae"], serving.load_contract(out / "vqvae")

    def over_rest(signature_name, **inputs):
        body = json.dumps(serving.rest_request(signature_name, contract=contract, **inputs))
        reply = json.dumps(server.rest_predict(body))
        return serving.parse_rest_response(reply, signature_name, contract=contract)

    encoded = over_rest("encode", images=digits[:3])
    direct = server.predict("encode", images=digits[:3])
    assert encoded["indices"].dtype == np.int32 and encoded["latent"].dtype == np.float32
    np.testing.assert_array_equal(encoded["indices"], direct["indices"])
    # The indices go back as they came: decode_indices takes int32 only.
    decoded = over_rest("decode_indices", indices=encoded["indices"])
    # A request built without the contract names the VQ-VAE's own signature too, and gets the same reply.
    generic = serving.rest_request("decode_indices", indices=encoded["indices"])
    np.testing.assert_array_equal(
        serving.parse_rest_response(server.rest_predict(json.dumps(generic)))["output"], decoded["images"]
    )
    assert set(decoded) == {"images"}  # the single output's own name, which the wire dropped
    np.testing.assert_allclose(
        decoded["images"], server.predict("decode_indices", indices=direct["indices"])["images"], atol=1e-6
    )
    with pytest.raises(
        ServingError,
        match=r"signature 'encode' answers \['indices', 'latent'\]; the server sent \['reconstruction', 'score'\]",
    ):
        body = serving.rest_request(contract=contract, images=digits[:1])
        serving.parse_rest_response(server.rest_predict(body), "encode", contract=contract)


def test_grpc_round_trip(servers, digits):
    request = serving.grpc_request("vae", "encode", version=1, images=digits[:5])
    assert isinstance(request, predict_pb2.PredictRequest)
    wire = request.SerializeToString()  # what goes over gRPC
    response = servers["vae"].grpc_predict(predict_pb2.PredictRequest.FromString(wire))
    outputs = serving.parse_grpc_response(
        predict_pb2.PredictResponse.FromString(response.SerializeToString())
    )
    assert set(outputs) == {"latent", "z_mean", "z_log_var"}
    np.testing.assert_allclose(
        outputs["z_mean"], servers["vae"].predict("encode", images=digits[:5])["z_mean"], atol=1e-6
    )
    assert (response.model_spec.name, response.model_spec.version.value) == ("vae", 1)
    # output_filter answers those outputs alone; a tensor of another dtype is refused, as by TF Serving.
    request.output_filter.append("z_mean")
    assert set(serving.parse_grpc_response(servers["vae"].grpc_predict(request))) == {"z_mean"}
    doubles = predict_pb2.PredictRequest()
    doubles.CopyFrom(request)
    doubles.inputs["images"].CopyFrom(tf.make_tensor_proto(digits[:5].astype(np.float64)))
    with pytest.raises(ServingError, match=r"images: a float64 tensor, where 'encode' takes float32"):
        servers["vae"].grpc_predict(doubles)
    # Another name or version is not answered by this one, as TF Serving answers NOT_FOUND.
    for name, version in (("dense", 1), ("vae", 2)):
        wrong = serving.grpc_request(name, "encode", version=version, images=digits[:1])
        with pytest.raises(
            ServingError, match=f"no model '{name}' version {version} here: this server serves 'vae'"
        ):
            servers["vae"].grpc_predict(wrong)


@pytest.mark.parametrize(
    "model, signature, inputs, message",
    [
        (
            "dense",
            "serving_default",
            {"images": np.zeros((2, 28, 28))},
            r"signature 'serving_default' expects images: float32 \[batch, 28, 28, 1\]; got images: float64 \[2, 28, 28\]",
        ),
        ("dense", "serving_default", {"images": np.zeros((2, 28, 28, 1), np.int64)}, "got images: int64"),
        ("dense", "serving_default", {"pixels": np.zeros((2, 28, 28, 1))}, r"got inputs \['pixels'\]"),
        (
            "dense",
            "decode",
            {"latent": np.zeros((2, 28, 28, 1))},
            r"signature 'decode' expects latent: float32 \[batch, 16\]",
        ),
        ("vae", "sample", {"num_samples": 2.5}, r"signature 'sample' expects num_samples: int32 \[\]"),
        ("dense", "generate", {"images": np.zeros((1, 28, 28, 1))}, "unknown signature 'generate'"),
        (
            "dense",
            "serving_default",
            {"images": np.full((1, 28, 28, 1), 255.0)},
            r"signature 'serving_default' expects images on \[0, 1\]; got values from 255 to 255 \(divide 0-255 pixels by 255\)",
        ),
    ],
)
def test_bad_requests_name_the_expected_signature(exported_models, model, signature, inputs, message):
    out, _ = exported_models
    contract = serving.load_contract(out / model)
    with pytest.raises(ServingError, match=message):
        serving.rest_request(signature, contract=contract, **inputs)
    with pytest.raises(ServingError, match=message):
        serving.grpc_request(model, signature, contract=contract, **inputs)


def test_without_the_contract_what_every_export_shares_is_checked():
    with pytest.raises(ServingError, match=r"expects images on \[0, 1\]; got values from 0 to 200"):
        serving.rest_request(images=np.linspace(0, 200, 16).reshape(1, 4, 4, 1))
    with pytest.raises(
        ServingError,
        match=r"signature 'serving_default' expects images: float32 \[batch, ...\]; got inputs \['pixels'\]",
    ):
        serving.rest_request(pixels=np.zeros((1, 4, 4, 1)))
    # Shapes are the export's to check: any batch of [0, 1] images passes.
    assert len(serving.rest_request(images=np.zeros((2, 5, 7, 3)))["instances"]) == 2


def test_the_server_checks_against_the_loaded_signature(servers):
    with pytest.raises(
        ServingError,
        match=r"signature 'decode' expects latent: float32 \[batch, 16\]; got latent: float32 \[1, 3\]",
    ):
        servers["dense"].predict("decode", latent=np.zeros((1, 3), np.float32))
    with pytest.raises(ServingError, match="unknown signature 'sample'"):
        servers["dense"].predict("sample", num_samples=3)
    with pytest.raises(ServingError, match='"instances" is empty'):
        servers["dense"].rest_predict({"instances": []})


def test_server_errors_are_raised_when_parsed():
    with pytest.raises(ServingError, match="the server refused the request: Missing 'inputs'"):
        serving.parse_rest_response("{\"error\": \"Missing 'inputs' or 'instances' key\"}")


_IMAGES = r"signature 'serving_default' expects images: float32 \[batch, 28, 28, 1\]; got images"


@pytest.mark.parametrize(
    "body, message",
    [
        ('{"instances": [', r"^the request body is not valid JSON \(Expecting value: line 1 column 16"),
        (b"\xff", "^the request body is not valid JSON"),
        ("[1, 2, 3]", "^the request body must be a JSON object, got an array$"),
        ("null", "^the request body must be a JSON object, got null$"),
        ({"instances": {"images": [0.5]}}, '^"instances" must be an array of examples, got an object$'),
        ({"instances": 5}, '^"instances" must be an array of examples, got a number$'),
        ({"signature_name": 3, "inputs": [0.5]}, '^"signature_name" must be a string, got a number$'),
        ({"inputs": None}, _IMAGES + " with null among its values$"),
        ({"instances": [None]}, _IMAGES + " with null among its values$"),
        ({"inputs": [[0.5, True]]}, _IMAGES + " with true/false among its values$"),  # NumPy reads 1.0
        ({"instances": [{"b64": "AAAA"}]}, r"; got inputs \['b64'\]$"),
    ],
)
def test_malformed_rest_bodies_are_refused_in_one_line(servers, body, message):
    """TF Serving answers such bodies with {"error": ...}; the stand-in raises ServingError, never KeyError or TypeError."""
    with pytest.raises(ServingError, match=message):
        servers["dense"].rest_predict(body)


def test_unnamed_values_for_several_inputs_are_refused(exported_models, digits):
    out, _ = exported_models
    server = LocalServer(out / "cvae")
    rows = digits[:1].tolist()
    expects = (
        r"signature 'serving_default' expects images: float32 \[batch, 28, 28, 1\], labels: int32 \[batch\]"
    )
    with pytest.raises(
        ServingError, match=expects + '; "instances" sent values without names: name each input$'
    ):
        server.rest_predict({"instances": rows})
    with pytest.raises(ServingError, match=expects + '; "inputs" sent values without names'):
        server.rest_predict({"inputs": rows})
    with pytest.raises(
        ServingError, match=r"; got labels with whole numbers beyond int64's range among its values$"
    ):
        server.rest_predict({"inputs": {"images": rows, "labels": [10**20]}})
    answer = server.rest_predict({"instances": [{"images": rows[0], "labels": 3}]})
    np.testing.assert_allclose(
        answer["predictions"][0]["score"],
        server.predict(images=digits[:1], labels=[3])["score"][0],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "reply, message",
    [
        ('{"predictions": [', "^the response is not valid JSON"),
        ("[1, 2]", "^the response must be a JSON object, got an array$"),
        ("{}", r'^a REST :predict response has "predictions" or "outputs"; got \[\]$'),
        ('{"predictions": 5}', '^"predictions" must be an array, got a number$'),
        ('{"predictions": [{"score": 1}, {"reconstruction": 2}]}', r'^every one of "predictions" must name'),
    ],
)
def test_malformed_rest_replies_are_refused_in_one_line(reply, message):
    """A cut-off reply, or a proxy's page, raises ServingError as the docstring promises."""
    with pytest.raises(ServingError, match=message):
        serving.parse_rest_response(reply)


@pytest.mark.parametrize("name", IMAGE_ONLY_NAMES)
def test_signatures_on_nan_empty_and_wrongly_typed_batches(exported_models, digits, name):
    """What the export itself does, as TF Serving would run it."""
    _, exported = exported_models
    signatures = tf.saved_model.load(str(exported[name][1]), tags=["serve"]).signatures
    images = digits[:4].copy()
    clean = signatures["serving_default"](images=tf.constant(images))
    images[1, 14, 14, 0] = np.nan
    images[2, 0, 0, 0] = np.inf
    dirty = signatures["serving_default"](images=tf.constant(images))
    # A non-finite pixel makes its image's score non-finite (NaN for NaN);
    # the other images of the batch are answered as without it.
    score = dirty["score"].numpy()
    assert np.isnan(score[1]) and not np.isfinite(score[2])
    for output in ("reconstruction", "score"):
        np.testing.assert_allclose(dirty[output].numpy()[[0, 3]], clean[output].numpy()[[0, 3]], atol=1e-6)

    model = exported[name][0]
    if not any(isinstance(layer, keras.layers.Conv2D) for layer in model._flatten_layers()):
        # An empty batch gives empty outputs. (Not for convolutions on a CPU:
        # TensorFlow's oneDNN kernels fail on an empty batch, so aekeras.serving
        # refuses to send one.)
        empty = signatures["serving_default"](images=tf.zeros((0, 28, 28, 1)))
        assert empty["reconstruction"].shape == (0, 28, 28, 1) and empty["score"].shape == (0,)
        latent = signatures["encode"](images=tf.zeros((0, 28, 28, 1)))["latent"]
        assert latent.shape[0] == 0
        assert signatures["decode"](latent=latent)["images"].shape == (0, 28, 28, 1)

    # Any dtype but float32 is refused, naming the one expected.
    for dtype in (tf.float64, tf.float16, tf.int32, tf.uint8):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected to be a float tensor but is a"):
            signatures["serving_default"](images=tf.zeros((1, 28, 28, 1), dtype))
    if "sample" in signatures:
        assert signatures["sample"](num_samples=tf.constant(0))["images"].shape == (0, 28, 28, 1)
        with pytest.raises(tf.errors.InvalidArgumentError):
            signatures["sample"](num_samples=tf.constant(-1))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_before_they_are_sent(servers, digits, bad):
    images = digits[:3].copy()
    images[1, 3, 3, 0] = bad
    message = r"signature 'serving_default' got NaN or infinite values in images \(1 of 3 examples\)"
    with pytest.raises(ServingError, match=message):
        serving.rest_request(images=images)
    with pytest.raises(ServingError, match=message):
        serving.grpc_request("dense", contract=servers["dense"].contract, images=images)
    for server in servers.values():
        with pytest.raises(ServingError, match=message):
            server.predict(images=images)
    with pytest.raises(ServingError, match=r"signature 'decode' got NaN or infinite values in latent"):
        servers["vae"].predict("decode", latent=np.full((1, 4), bad, np.float32))


def test_an_empty_batch_is_refused_before_it_is_sent(servers):
    empty = np.zeros((0, 28, 28, 1), np.float32)
    message = r"signature 'serving_default' expects images: float32 \[batch, 28, 28, 1\]; got an empty batch"
    with pytest.raises(ServingError, match=r"expects images: float32 \[batch, ...\]; got an empty batch"):
        serving.rest_request(images=empty)
    with pytest.raises(ServingError, match=message):
        serving.grpc_request("conv", contract=servers["conv"].contract, images=empty)
    with pytest.raises(ServingError, match=message):
        servers["conv"].predict(images=empty)


def test_integer_inputs_outside_int32_or_below_zero_are_refused():
    """-1 would decode as the last codebook vector in every runtime, and 2**32 as index 0."""
    from aekeras.signatures import Contract, Signature, TensorInfo

    indices = TensorInfo("indices", "int32", (None, 7, 7))
    contract = Contract({"decode_indices": Signature("decode_indices", (indices,), ())})
    for bad, low, high in ((-1, -1, 5), (2**32, 5, 2**32)):
        values = np.full((1, 7, 7), 5, np.int64)
        values[0, 0, 0] = bad
        with pytest.raises(
            ServingError, match=f"expects indices from 0 to 2147483647; got values from {low} to {high}"
        ):
            contract.check("decode_indices", {"indices": values})
    checked = contract.check("decode_indices", {"indices": np.full((2, 7, 7), 63, np.int64)})["indices"]
    assert checked.dtype == np.int32 and checked.max() == 63
    # A count of 0 asks for nothing: the SavedModel answers an empty batch, LiteRT and ONNX errors.
    counts = Contract({"sample": Signature("sample", (TensorInfo("num_samples", "int32", ()),), ())})
    for bad in (0, -1):
        with pytest.raises(
            ServingError, match=f"expects num_samples from 1 to 2147483647; got values from {bad}"
        ):
            counts.check("sample", {"num_samples": np.int32(bad)})
    assert counts.check("sample", {"num_samples": 3})["num_samples"] == 3


def test_an_export_is_served_under_another_keras_backend(tmp_path):
    """LocalServer loads a SavedModel as TF Serving does, whatever Keras's backend: under torch (a
    notebook's own) its import stopped in `aekeras.models`' refusal, reached through `aekeras.export`."""
    from aekeras import export
    from aekeras.models import DenseAutoencoder

    path = export.saved_model(DenseAutoencoder(latent_dim=2), tmp_path, "dense")
    probe = (
        "import keras, numpy as np; keras.backend.backend = lambda: 'torch'; "
        "from aekeras.serving import LocalServer; "
        f"server = LocalServer({str(path.parent)!r}); "
        "print(server.predict(images=np.zeros((2, 28, 28, 1), np.float32))['reconstruction'].shape)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 28, 28, 1)"
