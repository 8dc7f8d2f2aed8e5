import numpy as np
import pytest

from aekeras.analysis import encoder_kernels, reconstructions
from aekeras.models import ConvAutoencoder, DenseAutoencoder


def test_reconstructions_on_the_unit_scale(trained_dense, digits):
    result = reconstructions({"standard": trained_dense}, digits[:100])
    outputs = result["reconstructions"]["standard"]
    expected = (trained_dense.predict(digits[:100] * 2 - 1, verbose=0) + 1) / 2
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    assert 0 <= outputs.min() and outputs.max() <= 1
    assert result["metrics"]["standard"]["mse"] == pytest.approx(
        np.mean((outputs - digits[:100]) ** 2), rel=1e-5
    )


def test_encoder_kernels_are_weight_rows(trained_dense):
    kernels = encoder_kernels(trained_dense, count=20)
    assert kernels.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(kernels[3].ravel(), trained_dense.encoder.layers[-1].kernel.numpy()[:, 3])
    with pytest.raises(ValueError, match="expected a dense encoder reading 784 pixels"):
        encoder_kernels(ConvAutoencoder())


def test_kernels_of_rgb_models_keep_their_shape():
    model = DenseAutoencoder(latent_dim=5, image_shape=(6, 4, 3))
    kernels = encoder_kernels(model, count=5)
    assert kernels.shape == (5, 6, 4, 3)
    np.testing.assert_array_equal(kernels[2].ravel(), model.encoder.layers[-1].kernel.numpy()[:, 2])
