import numpy as np
import pytest
from test_case import AutoencoderTestCase, mnist

from aekeras.models import ConvAutoencoder


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=16))).numpy()


class TestConvAutoencoder(AutoencoderTestCase):
    @pytest.mark.parametrize(
        "kwargs, code_shape",
        [
            ({}, (4, 4, 8)),
            ({"latent_dim": 2}, (2,)),
            ({"downsampling": "strided"}, (4, 4, 8)),
            ({"filters": (32, 64), "latent_dim": 16}, (16,)),
        ],
    )
    def test_shapes(self, images, kwargs, code_shape):
        model = ConvAutoencoder(**kwargs)
        assert model.encode(images).shape == (16, *code_shape)
        outputs = model(images).numpy()
        assert outputs.shape == (16, 28, 28, 1)
        assert outputs.min() >= 0 and outputs.max() <= 1  # sigmoid

    def test_the_16_8_8_model(self):
        model = ConvAutoencoder()
        names = [layer.name for layer in model.encoder.layers]
        assert names == ["conv_0", "pool_0", "conv_1", "pool_1", "conv_2", "pool_2"]
        assert [model.encoder.get_layer(f"conv_{i}").filters for i in range(3)] == [16, 8, 8]
        assert model.reconstruction_loss == "binary_crossentropy"

    @pytest.mark.parametrize("kwargs", [{}, {"latent_dim": 2, "downsampling": "strided"}])
    def test_serialization(self, kwargs):
        self.run_serialization_test(ConvAutoencoder(**kwargs))

    def test_saving(self, images, tmp_path):
        self.run_saving_test(ConvAutoencoder(latent_dim=2), images, tmp_path)

    def test_fit_on_real_mnist_lowers_validation_loss(self):
        before, after = self.run_fit_test(
            ConvAutoencoder(), mnist("train", limit=2048, batch_size=128), mnist("test", limit=512), epochs=2
        )
        assert after["loss"] < 0.9 * before["loss"]

    def test_mse_option_and_bad_arguments(self, images):
        model = ConvAutoencoder(reconstruction_loss="mse")
        model.compile(optimizer="adam")
        logs = model.evaluate(images, verbose=0, return_dict=True)
        expected = np.mean((model(images).numpy() - images) ** 2)
        assert logs["reconstruction_loss"] == pytest.approx(expected, rel=1e-5)
        with pytest.raises(ValueError, match="downsampling must be one of"):
            ConvAutoencoder(downsampling="avg")
        with pytest.raises(ValueError, match="filters must be positive integers"):
            ConvAutoencoder(filters=())
