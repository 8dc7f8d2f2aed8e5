import keras
import numpy as np

from aekeras.analysis import super_resolution
from aekeras.analysis.superresolution import downsample, super_resolution_model


def test_downsample_is_average_pooling(digits):
    low = downsample(digits[:3])
    assert low.shape == (3, 14, 14, 1)
    np.testing.assert_allclose(low[0, 5, 6, 0], digits[0, 10:12, 12:14, 0].mean(), rtol=1e-6)


def test_trained_model_beats_bicubic(mnist_train_small, digits):
    keras.utils.set_random_seed(0)
    model = super_resolution_model((14, 14, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = mnist_train_small[0]
    model.fit(downsample(images), images, epochs=3, batch_size=128, verbose=0)
    result = super_resolution(model, digits[:500])
    assert result["model"].shape == result["bicubic"].shape == (500, 28, 28, 1)
    assert 10 < result["psnr"]["bicubic"] < result["psnr"]["model"]
