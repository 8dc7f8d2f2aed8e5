"""Kernels on LiteRT's int8 grid: exact int8 weights, and int16x8 files within a hundredth per pixel."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from test_case import IMAGE_ONLY_NAMES

from aekeras import cli, export, quantization, tflite
from aekeras.models import ConvAutoencoder, DenseAutoencoder

NAMES = tuple(name for name in IMAGE_ONLY_NAMES if name != "vqvae")  # the VQ-VAE's codes are indices


@pytest.fixture(scope="module")
def calibration(mnist_dir):
    return tflite.calibration_images("mnist", 200, data_dir=mnist_dir)


@pytest.fixture(scope="module")
def int8_exports(exported_models, tmp_path_factory, calibration):
    """name -> (the snapped copy's version folder, its int16x8 file)."""
    _, exported = exported_models
    out = tmp_path_factory.mktemp("int8_weights")
    result = {}
    for name in NAMES:
        path = export.saved_model(exported[name][0], out, name, int8_weights=True)
        result[name] = (path, tflite.convert(path, "int16x8", images=calibration))
    return result


def _per_channel(values, axis):
    """Each output channel's values, sorted: comparable whatever the layout."""
    channels = np.moveaxis(np.asarray(values, np.float64), axis, 0)
    return np.sort(channels.reshape(len(channels), -1), axis=1)


def test_int8_grid_is_the_grid_litert_stores(exported_models, int8_exports):
    """Every int8 kernel LiteRT writes, dequantised, is one of the snapped kernels exactly."""
    for name in ("dense", "conv", "vae"):
        model = exported_models[1][name][0]
        snapped = [
            _per_channel(
                quantization.int8_grid(layer.kernel.numpy(), quantization.output_axis(layer)),
                quantization.output_axis(layer),
            )
            for layer in quantization.kernel_layers(model)
        ]
        interpreter = Interpreter(model_path=str(int8_exports[name][1]))
        stored = [t for t in interpreter.get_tensor_details() if t["dtype"] == np.int8]
        assert stored, name
        for tensor in stored:
            scales = tensor["quantization_parameters"]["scales"]
            # LiteRT's layout has the output channels first.
            values = interpreter.get_tensor(tensor["index"]).astype(np.float64)
            dequantised = _per_channel(values * scales.reshape(-1, *[1] * (values.ndim - 1)), 0)
            assert any(
                kernel.shape == dequantised.shape and np.allclose(kernel, dequantised, rtol=1e-6, atol=1e-9)
                for kernel in snapped
            ), (name, tensor["name"])


@pytest.mark.parametrize("name", NAMES)
def test_int16x8_of_int8_weights_stays_within_a_hundredth(exported_models, int8_exports, digits, name):
    plain_path = exported_models[1][name][1]
    path, int16x8 = int8_exports[name]
    differences = tflite.max_differences(int16x8, digits)
    for signature, outputs in differences.items():
        for output, difference in outputs.items():
            assert difference < 1e-2, (signature, output, difference)
    # Snapping costs the model little: its test MSE moves by under 5%.
    snapped = tflite.Runner(tflite.convert(path, "none")).reconstruction_mse(digits)
    unsnapped = tflite.Runner(tflite.convert(plain_path, "none")).reconstruction_mse(digits)
    assert snapped == pytest.approx(unsnapped, rel=0.05)


def test_export_snaps_a_copy_and_records_it(exported_models, tmp_path):
    model = exported_models[1]["dense"][0]
    before = [w.copy() for w in model.get_weights()]
    path = export.saved_model(model, tmp_path, "dense", settings={"seed": 0}, int8_weights=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert (path / "run.json").read_text().count('"int8_weights": true') == 1
    kernel = quantization.kernel_layers(model)[0].kernel.numpy()
    assert not np.array_equal(quantization.int8_grid(kernel), kernel)  # there was something to snap
    grid = quantization.int8_grid(quantization.int8_grid(kernel))
    np.testing.assert_array_equal(grid, quantization.int8_grid(kernel))  # snapping twice changes nothing


def test_tied_weights_are_refused_before_anything_is_written(tmp_path):
    model = DenseAutoencoder(latent_dim=4, tied_weights=True)
    with pytest.raises(ValueError, match="int8 weights: dense_0_t reuses an encoder kernel transposed"):
        export.saved_model(model, tmp_path, "tied", int8_weights=True)
    assert list(tmp_path.iterdir()) == []


def test_the_command_refuses_tied_weights_in_one_line(tmp_path, monkeypatch, capsys):
    DenseAutoencoder(latent_dim=4, tied_weights=True).save(tmp_path / "tied.keras")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", "tied.keras", "--name", "tied", "--int8-weights"]) == 2
    assert capsys.readouterr().err == (
        "aekeras: error: int8 weights: dense_0_t reuses an encoder kernel transposed, which cannot lie on "
        "both layers' per-channel grids (expected a model without tied weights)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tied.keras"]


def test_on_int8_grid_tells_snapped_exports_from_others(exported_models, int8_exports):
    for name in ("dense", "conv", "vae"):
        snapped = tf.saved_model.load(str(int8_exports[name][0]), tags=["serve"])
        plain = tf.saved_model.load(str(exported_models[1][name][1]), tags=["serve"])
        assert quantization.on_int8_grid(snapped) and not quantization.on_int8_grid(plain), name


def test_a_transposed_convolutions_grid_is_per_output_channel_and_a_dead_channel_stays_zero():
    # Conv2DTranspose keeps its output channels on the kernel's axis -2: one scale each, as LiteRT stores it.
    model = ConvAutoencoder(filters=(4, 2), downsampling="strided")
    model(np.zeros((1, 28, 28, 1), np.float32))
    copy = quantization.int8_snapped_copy(model)
    (transposed,) = [
        layer for layer in quantization.kernel_layers(copy) if isinstance(layer, keras.layers.Conv2DTranspose)
    ][:1]
    kernel = transposed.kernel.numpy()
    assert quantization.output_axis(transposed) == -2
    np.testing.assert_array_equal(quantization.int8_grid(kernel, -2), kernel)
    assert not np.array_equal(quantization.int8_grid(kernel, -1), kernel)
    assert quantization.on_int8_grid(copy) and not quantization.on_int8_grid(model)
    # A channel of zeros (pruned, or never trained) has no scale to divide by: it stays zeros, not NaN.
    snapped = quantization.int8_grid(np.array([[0.0, 1.0], [0.0, -2.0]], np.float32))
    np.testing.assert_array_equal(snapped[:, 0], [0.0, 0.0])
    np.testing.assert_allclose(snapped[:, 1], [1.0, -2.0], atol=1 / 127)
