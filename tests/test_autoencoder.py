import keras
import numpy as np
import pytest
import tensorflow as tf

from aekeras.models import Autoencoder, DenseAutoencoder
from test_case import AutoencoderTestCase, mnist


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

    def test_labels_and_sample_weights_are_refused(self, images):
        model = small_autoencoder()
        model.compile(optimizer="adam")
        labels = np.zeros(64, np.int64)
        with pytest.raises(ValueError, match=r"not\s+\(images, labels\)"):
            model.fit(images, labels, epochs=1, verbose=0)
        with pytest.raises(ValueError, match="does not take sample weights"):
            model.fit(images, images, sample_weight=np.ones(64), epochs=1, verbose=0)

    def test_layer_penalties_join_the_loss(self, images):
        encoder = keras.Sequential(
            [keras.layers.Flatten(), keras.layers.Dense(16, kernel_regularizer=keras.regularizers.L2(1.0))]
        )
        decoder = keras.Sequential([keras.layers.Dense(784), keras.layers.Reshape((28, 28, 1))])
        model = Autoencoder(encoder, decoder)
        model.compile(optimizer="adam")
        logs = model.evaluate(images, verbose=0, return_dict=True)
        penalty = float(np.sum(np.square(encoder.layers[1].kernel.numpy())))
        assert logs["loss"] == pytest.approx(logs["reconstruction_loss"] + penalty, rel=1e-5)


def train_one_step(model, images, strategy):
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.fit(images, epochs=1, batch_size=len(images), shuffle=False, verbose=0)
    return [w.numpy() for w in model.weights]


def test_two_replicas_match_one_device(images):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) == 2, "conftest.py splits the CPU into two logical devices"
    keras.utils.set_random_seed(0)
    single = DenseAutoencoder(latent_dim=8)
    initial = single.get_weights()
    mirrored = tf.distribute.MirroredStrategy(devices)
    with mirrored.scope():
        replicated = DenseAutoencoder(latent_dim=8)
        replicated.set_weights(initial)
    got = train_one_step(replicated, images, mirrored)
    expected = train_one_step(single, images, tf.distribute.get_strategy())
    assert mirrored.num_replicas_in_sync == 2
    assert any(not np.allclose(w, w0) for w, w0 in zip(expected, initial))
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6)
