import keras
import numpy as np
import pytest
from test_case import AutoencoderTestCase, mnist

from aekeras.models import Autoencoder


def small_autoencoder():
    encoder = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(16, "relu")], name="enc")
    decoder = keras.Sequential(
        [keras.layers.Dense(784, "sigmoid"), keras.layers.Reshape((28, 28, 1))], name="dec"
    )
    return Autoencoder(encoder, decoder, reconstruction_loss="binary_crossentropy")


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=64, batch_size=64))).numpy()


class TestAutoencoder(AutoencoderTestCase):
    def test_any_encoder_and_decoder(self, images):
        model = small_autoencoder()
        assert model.built and model.encode(images).shape == (64, 16)
        assert model(images).shape == images.shape

    def test_serialization_and_saving_carry_the_layers(self, images, tmp_path):
        model = small_autoencoder()
        self.run_serialization_test(model)
        assert model.get_config()["encoder"]["config"]["name"] == "enc"
        self.run_saving_test(model, images, tmp_path)

    def test_fit_with_input_target_pairs(self, images):
        # Targets differ from inputs (denoising, super-resolution): the loss
        # is measured against the targets.
        model = small_autoencoder()
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        noisy = np.clip(images + np.random.default_rng(0).normal(0, 0.3, images.shape), 0, 1)
        clean_loss = model.evaluate(noisy, images, verbose=0, return_dict=True)["loss"]
        self_loss = model.evaluate(noisy, noisy, verbose=0, return_dict=True)["loss"]
        assert clean_loss != pytest.approx(self_loss)
        model.fit(noisy, images, epochs=5, batch_size=16, verbose=0)
        assert model.evaluate(noisy, images, verbose=0, return_dict=True)["loss"] < clean_loss
