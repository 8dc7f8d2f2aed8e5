import keras
import numpy as np
import pytest
from test_case import AutoencoderTestCase, mnist

from aekeras.models import DenseAutoencoder


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=16, value_range=(-1, 1)))).numpy()


class TestDenseAutoencoder(AutoencoderTestCase):
    def test_lecture_defaults(self, images):
        model = DenseAutoencoder()
        assert model.latent_dim == 30 and model.value_range == (-1.0, 1.0)
        assert model.count_params() == 784 * 30 + 30 + 30 * 784 + 784
        codes = model.encode(images)
        outputs = model(images)
        assert codes.shape == (16, 30) and outputs.shape == (16, 28, 28, 1)
        # tanh after the encoder and after the decoder.
        assert np.abs(codes).max() <= 1 and np.abs(outputs).max() <= 1
        kernel = model.encoder.layers[-1].kernel.numpy()
        bias = model.encoder.layers[-1].bias.numpy()
        np.testing.assert_allclose(codes, np.tanh(images.reshape(16, -1) @ kernel + bias), atol=1e-5)
        np.testing.assert_allclose(model.decode(codes), outputs, atol=1e-6)

    def test_torch_linear_initialisation(self):
        keras.utils.set_random_seed(0)
        kernel = DenseAutoencoder(latent_dim=500).encoder.layers[-1].kernel.numpy()
        bound = np.float32(1 / np.sqrt(784))  # compared in float32: the bound rounds up there
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.99 * bound

    def test_over_complete_flat_inputs_and_hidden_layers(self, images):
        flat = images.reshape(16, 784)
        model = DenseAutoencoder(latent_dim=500, image_shape=(784,))
        assert model.encode(flat).shape == (16, 500) and model(flat).shape == (16, 784)
        deep = DenseAutoencoder(latent_dim=8, hidden_dims=(128, 64))
        assert [layer.units for layer in deep.encoder.layers[1:]] == [128, 64, 8]
        assert [layer.units for layer in deep.decoder.layers[:-1]] == [64, 128, 784]
        assert deep(images).shape == images.shape

    @pytest.mark.parametrize("hidden_dims", [(), (64,)])
    def test_tied_weights_are_one_variable(self, images, hidden_dims):
        model = DenseAutoencoder(latent_dim=10, hidden_dims=hidden_dims, tied_weights=True)
        encoder_dense = model.encoder.layers[1:]
        decoder_dense = model.decoder.layers[:-1]
        # Each decoder layer owns only a bias; the kernels are the encoder's.
        assert len(model.trainable_weights) == 3 * len(encoder_dense)
        assert all(d.tied_to is e for d, e in zip(decoder_dense, reversed(encoder_dense), strict=True))
        codes = model.encode(images).numpy()
        hidden = codes
        for layer in decoder_dense:
            hidden = layer.activation(hidden @ layer.tied_to.kernel.numpy().T + layer.bias.numpy())
        np.testing.assert_allclose(model.decode(codes).numpy().reshape(16, -1), hidden, atol=1e-5)
        # Training moves encoder and decoder together.
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.fit(images, epochs=1, batch_size=16, verbose=0)
        np.testing.assert_array_equal(
            decoder_dense[-1].tied_to.kernel.numpy(), encoder_dense[0].kernel.numpy()
        )

    @pytest.mark.parametrize(
        "kwargs", [{}, {"latent_dim": 500}, {"tied_weights": True, "hidden_dims": (32,)}]
    )
    def test_serialization(self, kwargs):
        self.run_serialization_test(DenseAutoencoder(**kwargs))

    @pytest.mark.parametrize("tied_weights", [False, True])
    def test_saving(self, images, tmp_path, tied_weights):
        loaded = self.run_saving_test(DenseAutoencoder(tied_weights=tied_weights), images, tmp_path)
        if tied_weights:
            assert loaded.decoder.layers[0].tied_to is loaded.encoder.layers[-1]

    def test_fit_on_real_mnist_lowers_test_loss(self):
        train = mnist("train", limit=4000, value_range=(-1, 1))
        test = mnist("test", limit=1000, value_range=(-1, 1))
        before, after = self.run_fit_test(DenseAutoencoder(), train, test, epochs=3)
        assert after["loss"] < 0.8 * before["loss"]

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="latent_dim must be a positive integer, got 0"):
            DenseAutoencoder(latent_dim=0)
        with pytest.raises(ValueError, match="needs value_range"):
            DenseAutoencoder(reconstruction_loss="binary_crossentropy")
        with pytest.raises(ValueError, match="value_range"):
            DenseAutoencoder(value_range=(0, 255))
