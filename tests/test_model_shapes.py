"""Every registered model builds, trains and round-trips for any image shape."""

import keras
import numpy as np
import pytest

from aekeras import registry
from aekeras.data import ImageSpec

# Sizes the conv downsampling does not divide, three channels and one.
SHAPES = [(13, 9, 3), (5, 7, 1)]
# The options that make each model small, and its variants.
CASES = [
    ("dense", {"latent_dim": 4}),
    ("dense", {"latent_dim": 4, "tied_weights": True}),
    ("conv", {}),
    ("conv", {"latent_dim": 3}),
    ("denoising", {"latent_dim": 8}),
    ("denoising", {"architecture": "conv"}),
    ("contractive", {"latent_dim": 4}),
    ("contractive", {"architecture": "conv"}),
    ("vae", {"latent_dim": 2}),
    ("vae", {"latent_dim": 2, "architecture": "conv"}),
    ("vae", {"latent_dim": 2, "likelihood": "continuous_bernoulli"}),
    ("iwae", {"latent_dim": 2, "num_samples": 2, "architecture": "conv"}),
    ("vqvae", {"num_embeddings": 8, "embedding_dim": 2}),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name, options", CASES, ids=lambda c: str(c))
def test_model_builds_trains_and_round_trips_for_any_shape(name, options, shape, tmp_path):
    spec = ImageSpec(shape, num_classes=3, source="somewhere")
    model = registry.build_model(name, spec, seed=0, **options)
    assert model.image_shape == shape
    # The spec travels in the config (a wrapper's in its wrapped model's):
    # shape, classes, source, and the scale the model chose.
    config = model.get_config()
    stored = config["image_spec"] if "image_spec" in config else config["autoencoder"]["config"]["image_spec"]
    assert stored == {**spec.get_config(), "value_range": list(model.value_range)}
    images = np.random.default_rng(0).uniform(size=(8, *shape)).astype(np.float32)
    scaled = model.image_spec.to_model_scale(images)
    assert model.predict(scaled, verbose=0).shape == (8, *shape)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(scaled, epochs=2, batch_size=4, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.image_spec == model.image_spec
    np.testing.assert_allclose(loaded.predict(scaled, verbose=0), model.predict(scaled, verbose=0), atol=1e-6)


def test_flat_vectors_for_dense_models_and_a_clear_refusal_for_conv():
    spec = ImageSpec((64,))
    assert registry.build_model("dense", spec, latent_dim=3).predict(np.zeros((2, 64)), verbose=0).shape == (
        2,
        64,
    )
    assert registry.build_model("vae", spec, latent_dim=3).predict(np.zeros((2, 64)), verbose=0).shape == (
        2,
        64,
    )
    with pytest.raises(
        ValueError, match=r"ConvAutoencoder needs \(height, width, channels\) images, got shape \(64,\)"
    ):
        registry.build_model("conv", spec)


def test_vae_likelihood_follows_the_images():
    assert registry.build_model("vae", ImageSpec((8, 8, 1))).likelihood == "bernoulli"
    assert registry.build_model("vae", ImageSpec((64,))).likelihood == "bernoulli"  # flat grey vectors
    assert registry.build_model("vae", ImageSpec((8, 8, 3))).likelihood == "gaussian"
    assert registry.build_model("vae", ImageSpec((8, 8, 3)), binarize=True).likelihood == "bernoulli"
    with pytest.raises(ValueError, match="binarize needs the bernoulli likelihood, got 'gaussian'"):
        registry.build_model("vae", ImageSpec((8, 8, 3)), binarize=True, likelihood="gaussian")
