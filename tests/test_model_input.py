"""Models given input of the wrong shape say which shape they expect; uint8 pixels they scale themselves."""

import numpy as np
import pytest

from aekeras import data
from aekeras.models import (
    VAE,
    ConditionalVAE,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
)

MODELS = {
    "dense": lambda: DenseAutoencoder(latent_dim=4),
    "conv": lambda: ConvAutoencoder(filters=(4, 2)),
    "denoising": lambda: DenoisingAutoencoder(DenseAutoencoder(latent_dim=4)),
    "contractive": lambda: ContractiveAutoencoder(DenseAutoencoder(latent_dim=4)),
    "vae": lambda: VAE(latent_dim=2, hidden_dims=(8,)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_wrong_shapes_name_the_expected_shape(name):
    model = MODELS[name]()
    assert model(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 28, 28, 1)
    # A dense encoder flattens whatever it gets: without the check, the first
    # two would be taken as images.
    for shape in ((2, 28, 28), (2, 784), (2, 27, 27, 1)):
        with pytest.raises(
            ValueError, match=rf"expects inputs of shape \(batch, 28, 28, 1\), got shape \({shape[0]}, "
        ):
            model(np.zeros(shape, np.float32))
    with pytest.raises(
        ValueError, match=r"expects inputs of shape \(batch, 28, 28, 1\), got shape \((3|None), 28, 28\)"
    ):
        model.predict(np.zeros((3, 28, 28), np.float32), verbose=0)


def test_flat_models_expect_flat_inputs():
    model = DenseAutoencoder(latent_dim=4, image_shape=(784,))
    assert model(np.zeros((2, 784), np.float32)).shape == (2, 784)
    with pytest.raises(
        ValueError,
        match=r"DenseAutoencoder expects inputs of shape \(batch, 784\), got shape \(2, 28, 28, 1\)",
    ):
        model(np.zeros((2, 28, 28, 1), np.float32))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_shape_check_holds_after_a_first_predict(name):
    # Keras retraces predict for a new shape with the shapes relaxed to None;
    # the check must still hold there, not only on the first trace.
    model = MODELS[name]()
    model.predict(np.zeros((5, 28, 28, 1), np.float32), verbose=0)
    for shape in ((2, 20, 20, 1), (2, 28, 28, 3), (2, 56, 28, 1)):
        # One ValueError naming the shape given: the graph's own check raised
        # InvalidArgumentError, naming the shape of a batch shard.
        with pytest.raises(
            ValueError,
            match=rf"{type(model).__name__} expects inputs of shape \(batch, 28, 28, 1\), got shape "
            rf"\({', '.join(map(str, shape))}\)$",
        ):
            model.predict(np.random.default_rng(0).uniform(size=shape).astype(np.float32), verbose=0)
    # A wrong code is refused by decode too.
    with pytest.raises(ValueError, match="expects codes of shape"):
        model.decode(np.zeros((2, 999), np.float32))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_uint8_pixels_are_taken_as_stored_and_scaled_by_the_model(name, mnist_dir):
    model = MODELS[name]()
    pixels = data.open_source("mnist", data_dir=mnist_dir).examples("test").images[:16]
    unit = data.unit_scale(pixels)
    scaled = model.image_spec.to_model_scale(unit)
    np.testing.assert_array_equal(model.predict(pixels, verbose=0), model.predict(scaled, verbose=0))
    np.testing.assert_array_equal(model.encode(pixels), model.encode(scaled))
    np.testing.assert_array_equal(model.reconstruct(pixels), model.reconstruct(unit))


def test_uint8_pixels_of_other_shapes_are_scaled_by_the_model(rgb_crops, digits_npz):
    # 32x32 RGB photographs in a conv model and a Gaussian VAE; 8x8 digits in a dense model.
    digits = np.load(digits_npz)["images"][:16, ..., None]
    cases = [
        (ConvAutoencoder(filters=(4, 2), image_shape=(32, 32, 3)), rgb_crops[1][:16]),
        (VAE(latent_dim=2, hidden_dims=(8,), image_shape=(32, 32, 3)), rgb_crops[1][:16]),
        (DenseAutoencoder(latent_dim=4, image_shape=(8, 8, 1)), digits),
    ]
    for model, pixels in cases:
        assert pixels.dtype == np.uint8
        unit = data.unit_scale(pixels)
        scaled = model.image_spec.to_model_scale(unit)
        np.testing.assert_array_equal(model.predict(pixels, verbose=0), model.predict(scaled, verbose=0))
        np.testing.assert_array_equal(model.encode(pixels), model.encode(scaled))
        np.testing.assert_array_equal(model.reconstruct(pixels), model.reconstruct(unit))

    # The likelihood estimate too, on the same importance samples.
    vae, pixels = cases[1]
    state = vae.seed_generator.state.numpy()
    from_pixels = vae.negative_log_likelihood(pixels, 4).numpy()
    vae.seed_generator.state.assign(state)
    np.testing.assert_allclose(
        from_pixels, vae.negative_log_likelihood(data.unit_scale(pixels), 4), rtol=1e-6
    )


def test_0_255_pixels_as_floats_are_refused_in_one_line(rgb_crops):
    """They trained to a loss in the thousands (a VAE's to NaN, blamed on the learning rate) without a word."""
    pixels = rgb_crops[1][:16]
    as_floats = pixels.astype(np.float32)
    model = ConvAutoencoder(filters=(4, 2), image_shape=(32, 32, 3))
    model.compile(optimizer="adam")
    taken = r"ConvAutoencoder\.{} takes float images on \[0.0, 1.0\]; got values up to 255, as 0-255 pixels have \(pass those as uint8"
    for method in ("fit", "evaluate", "predict"):
        with pytest.raises(ValueError, match=taken.format(method)):
            getattr(model, method)(as_floats, verbose=0)
    for method in ("reconstruct", "embed"):
        with pytest.raises(
            ValueError, match=r"reconstruct, embed and interpolate take float images on \[0.0, 1.0\]"
        ):
            getattr(model, method)(as_floats)
    with pytest.raises(ValueError, match="reconstruct, embed and interpolate take"):
        model.interpolate(as_floats[0], as_floats[1])
    # The lecture's dropout mask doubles values, centred inputs go below 0: both are taken.
    doubled = np.where(np.arange(as_floats.size).reshape(as_floats.shape) % 2, 2 * pixels / 255, 0)
    assert model.predict(doubled.astype(np.float32), verbose=0).shape == pixels.shape
    assert model.reconstruct(data.unit_scale(pixels) - 0.5).shape == pixels.shape
    # A [-1, 1] model takes floats on its own scale, and images on [0, 1] to reconstruct.
    dense = DenseAutoencoder(latent_dim=4, image_shape=(32, 32, 3))
    dense.compile(optimizer="adam")
    unit = data.unit_scale(pixels)
    history = dense.fit(dense.image_spec.to_model_scale(unit), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert dense.reconstruct(unit).shape == unit.shape
    with pytest.raises(
        ValueError,
        match=r"DenseAutoencoder\.fit takes float images on \[-1.0, 1.0\]; got values up to 255",
    ):
        dense.fit(as_floats, epochs=1, verbose=0)


def test_0_255_floats_are_refused_wherever_fit_takes_images(rgb_crops, digits):
    """Targets, validation data and a conditional VAE's (images, labels) were taken: a loss of 15,626, NaN."""
    pixels = rgb_crops[1][:16]
    model = ConvAutoencoder(filters=(4, 2), image_shape=(32, 32, 3))
    model.compile(optimizer="adam")
    unit = data.unit_scale(pixels)
    fit_takes = r"ConvAutoencoder\.fit takes float images on \[0.0, 1.0\]; got values up to 255"
    with pytest.raises(ValueError, match=fit_takes):
        model.fit(unit, pixels.astype(np.float32), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=fit_takes):
        model.fit(unit, epochs=1, verbose=0, validation_data=(pixels.astype(np.float32),))
    assert int(model.optimizer.iterations) == 0  # refused before a step, not after an epoch
    cvae = ConditionalVAE(latent_dim=2, hidden_dims=(8,), num_classes=10)
    cvae.compile(optimizer="adam")
    labels = np.arange(4) % 10
    with pytest.raises(ValueError, match=r"ConditionalVAE\.evaluate takes float images on \[0.0, 1.0\]"):
        cvae.evaluate((digits[:4] * 255, labels), verbose=0)
    with pytest.raises(
        ValueError, match=r"ConditionalVAE takes labels as int class indices from 0 to 9, got int64"
    ):
        cvae.predict((digits[:4], labels + 7), verbose=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_images_are_refused_in_one_line(bad, digits):
    """NaN images came back as plausible grey ones from predict, and +inf was called a 0-255 pixel."""
    model = ConvAutoencoder(filters=(4, 2))
    model.compile(optimizer="adam")
    dirty = digits[:6].copy()
    dirty[[1, 4], 3, 3, 0] = bad
    message = r"takes finite float images on \[0.0, 1.0\]; got NaN or infinite values in 2 of 6 images$"
    for method in ("fit", "evaluate", "predict"):
        with pytest.raises(ValueError, match=rf"ConvAutoencoder\.{method} {message}"):
            getattr(model, method)(dirty, verbose=0)
    with pytest.raises(ValueError, match=r"reconstruct, embed and interpolate take finite float images"):
        model.reconstruct(dirty)
    with pytest.raises(ValueError, match=rf"ConvAutoencoder {message}"):
        model.encode(dirty)


def test_integer_images_other_than_uint8_are_refused_by_the_unit_scale_helpers(digits):
    """int32 pixels were taken as values on [0, 1]: a VAE's codes 250 times too large."""
    vae = VAE(latent_dim=2, hidden_dims=(8,))
    as_int32 = np.round(digits[:4] * 255).astype(np.int32)
    refusal = r"VAE takes images as uint8 pixels \(0-255\) or floats on its scale \(0.0, 1.0\), got int32$"
    for method in ("reconstruct", "embed"):
        with pytest.raises(TypeError, match=refusal):
            getattr(vae, method)(as_int32)
    with pytest.raises(TypeError, match=refusal):
        vae.interpolate(as_int32[0], as_int32[1])


def test_empty_batches_and_odd_arguments_are_refused_in_one_line(digits):
    vae = VAE(latent_dim=2, hidden_dims=(8,))
    for method in ("predict", "reconstruct"):
        with pytest.raises(ValueError, match=r"^VAE got no images \(expected a batch of at least one\)$"):
            getattr(vae, method)(digits[:0])
    with pytest.raises(
        ValueError, match=r"steps must be an integer of at least 2 \(the two endpoints\), got 2.5"
    ):
        vae.interpolate(digits[0], digits[1], steps=2.5)
    for samples in (0, -3, 2.5):
        with pytest.raises(
            ValueError, match=rf"num_samples must be a positive integer \(k=1 is the ELBO\), got {samples}"
        ):
            vae.negative_log_likelihood(digits[:2], samples)
    with pytest.raises(ValueError, match=r"^VAE takes float images on \[0.0, 1.0\]; got values up to 255"):
        vae.negative_log_likelihood(digits[:2] * 255, 3)
