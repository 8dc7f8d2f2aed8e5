"""TFLite conversion of every model, run in the LiteRT interpreter."""

import numpy as np
import pytest
from test_case import MODEL_NAMES

from aekeras import tflite
from aekeras.serving import LocalServer, ServingError

NAMES = MODEL_NAMES


@pytest.fixture(scope="module")
def calibration(mnist_dir):
    return tflite.calibration_images("mnist", 200, data_dir=mnist_dir)


@pytest.fixture(scope="module")
def converted(exported_models, calibration):
    """name -> {quantization: Runner}, converted once for the module."""
    _, exported = exported_models
    return {
        name: {
            q: tflite.Runner(tflite.convert(path, q, images=calibration if q == "int8" else None))
            for q in tflite.QUANTIZATIONS
        }
        for name, (_, path) in exported.items()
    }


def keras_reconstruction(model, images):
    spec = model.image_spec
    return spec.to_unit_scale(model(spec.to_model_scale(images)).numpy())


@pytest.mark.parametrize("name", NAMES)
def test_float32_matches_keras(exported_models, converted, digits, name):
    model, path = exported_models[1][name]
    runner = converted[name]["none"]
    assert runner.path == path / f"{name}-none.tflite"
    assert set(runner.signatures) == set(LocalServer(path).model.signatures)
    out = runner("serving_default", images=digits[:32])
    np.testing.assert_allclose(out["reconstruction"], keras_reconstruction(model, digits[:32]), atol=1e-5)
    latent = runner("encode", images=digits[:32])["latent"]
    np.testing.assert_allclose(latent, model.encode(model.image_spec.to_model_scale(digits[:32])), atol=1e-5)
    np.testing.assert_allclose(runner("decode", latent=latent)["images"], out["reconstruction"], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_float16_and_dynamic_stay_close(exported_models, converted, digits, name):
    model, _ = exported_models[1][name]
    expected = keras_reconstruction(model, digits[:256])
    float16 = converted[name]["float16"]("serving_default", images=digits[:256])["reconstruction"]
    np.testing.assert_allclose(float16, expected, atol=1e-2)
    # Dynamic-range kernels quantise activations on the fly: single pixels
    # move by up to a few hundredths (README, "TFLite"), the mean far less.
    dynamic = converted[name]["dynamic"]("serving_default", images=digits[:256])["reconstruction"]
    assert np.mean(np.abs(dynamic - expected)) < 1e-2
    assert np.max(np.abs(dynamic - expected)) < 0.1


@pytest.mark.parametrize("name", NAMES)
def test_int8_mse_within_ten_percent_of_float(converted, digits, name):
    float_mse = converted[name]["none"].reconstruction_mse(digits)
    int8_mse = converted[name]["int8"].reconstruction_mse(digits)
    assert int8_mse <= 1.10 * float_mse
    sizes = {q: r.path.stat().st_size for q, r in converted[name].items()}
    assert sizes["dynamic"] < sizes["none"] and sizes["int8"] < sizes["none"]


def test_vae_sample_runs_in_litert(converted):
    for q in ("none", "int8"):
        runner = converted["vae"][q]
        first = runner("sample", num_samples=np.array(4, np.int32))["images"]
        second = runner("sample", num_samples=np.array(4, np.int32))["images"]
        assert first.shape == (4, 28, 28, 1) and not np.array_equal(first, second)
        assert 0 <= first.min() and first.max() <= 1


def test_bad_arguments(exported_models, converted, tmp_path):
    _, exported = exported_models
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        tflite.convert(exported["dense"][1], "int4")
    with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
        tflite.convert(tmp_path, "none")
    runner = tflite.Runner(tflite.tflite_path(exported["dense"][1], "none"))
    with pytest.raises(ValueError, match="unknown signature 'sample'"):
        runner("sample", num_samples=np.array(1, np.int32))
    with pytest.raises(ValueError, match="int8 quantisation needs calibration images"):
        tflite.convert(exported["dense"][1], "int8")


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_runner_checks_every_call_against_the_file(converted, digits, quantize):
    # LiteRT itself resizes its inputs to whatever it gets: [1, 56, 28, 1]
    # would be taken as two images.
    runner = converted["dense"][quantize]
    assert runner.contract.signature("encode").inputs[0].shape == (None, 28, 28, 1)
    for wrong in (
        np.zeros((1, 56, 28, 1), np.float32),
        np.zeros((1, 28, 28), np.float32),
        np.zeros((1, 28, 28, 3), np.float32),
    ):
        with pytest.raises(
            ServingError, match=r"signature 'encode' expects images: float32 \[batch, 28, 28, 1\]"
        ):
            runner("encode", images=wrong)
    with pytest.raises(ServingError, match=r"expects images on \[0, 1\]"):
        runner("serving_default", images=digits[:2] * 255)
    with pytest.raises(ServingError, match=r"signature 'decode' expects latent: float32 \[batch, 16\]"):
        runner("decode", latent=np.zeros((2, 3), np.float32))
    # float64 images are sent as float32, as to TF Serving.
    assert runner("encode", images=digits[:2].astype(np.float64))["latent"].shape == (2, 16)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_pixels_in_litert_are_refused_by_the_runner(converted, digits, name):
    images = digits[:3].copy()
    images[1, 14, 14, 0] = np.nan
    images[2, 0, 0, 0] = np.inf
    for quantize, runner in converted[name].items():
        # Unchecked, the float files answer with non-finite scores, as the
        # SavedModel does; the int8 file answers with plausible ones.
        raw = runner.interpreter.get_signature_runner("serving_default")(images=images)["score"]
        assert np.isfinite(raw[0])
        if quantize == "int8":
            assert np.isfinite(raw[1:]).all() and (raw[1:] < 1).all()
        else:
            assert not np.isfinite(raw[1:]).any()
        with pytest.raises(ServingError, match=r"got NaN or infinite values in images \(2 of 3 examples\)"):
            runner("serving_default", images=images)
