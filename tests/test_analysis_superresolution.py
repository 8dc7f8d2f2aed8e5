from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from aekeras.analysis import data_specific_super_resolution, super_resolution
from aekeras.analysis.superresolution import (
    BLOCK,
    bicubic_upsampling,
    downsample,
    photograph_crops,
    residual_super_resolution_model,
    super_resolution_model,
)


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


@pytest.fixture(scope="module")
def photographs():
    samples = load_sample_images()
    return {
        Path(name).stem: image.astype(np.float32) / 255.0
        for name, image in zip(samples.filenames, samples.images, strict=True)
    }


def test_held_out_crops_never_overlap_training_crops(photographs):
    height, width = photographs["china"].shape[:2]
    # Each pixel's own coordinates, cut as the photograph is: where every crop came from.
    where = np.stack(np.meshgrid(np.arange(height), np.arange(width), indexing="ij"), -1).astype(np.float32)
    train, test = photograph_crops(where)
    seen_in_training = {tuple(p) for p in train.reshape(-1, 2).astype(int).tolist()}
    tested = {tuple(p) for p in test.reshape(-1, 2).astype(int).tolist()}
    assert not seen_in_training & tested
    blocks = (height // BLOCK) * (width // BLOCK)
    assert len(test) == (blocks // 2) * 4  # 32x32 crops tiling half the 64x64 blocks
    assert len(train) == (blocks - blocks // 2) * 25 * 8  # every 8 pixels, 8 orientations
    china_train, china_test = photograph_crops(photographs["china"])
    assert china_train.shape[1:] == china_test.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(china_test[0], photographs["china"][:32, 64:96])  # block (0, 1)


def test_the_residual_model_starts_as_bicubic_and_survives_saving(tmp_path, photographs):
    _, test = photograph_crops(photographs["flower"])
    low = downsample(test[:16])
    model = residual_super_resolution_model(low.shape[1:])
    starting = np.clip(model.reconstruct(low), 0, 1)  # bicubic overshoots [0, 1] at edges
    np.testing.assert_allclose(starting, bicubic_upsampling(low, (32, 32)), atol=1e-6)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(low, test[:16], epochs=2, verbose=0)
    model.save(tmp_path / "sr.keras")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "sr.keras")(low), model(low))


def test_a_super_resolution_model_is_best_on_the_photograph_it_learned(photographs):
    """Part 11's headline on 3 epochs (the report trains 10): the gain over bicubic on a
    model's own photograph's held-out crops exceeds its gain on the other photograph's,
    by more than 1 dB on average. Measured: the flower model +1.58 dB on the flower's
    crops, the china model -1.30 there; both +0.10 on the china's.
    """
    result = data_specific_super_resolution(photographs, epochs=3, seed=0)
    gain = {
        (trained, tested): result["psnr"][trained][tested] - result["bicubic"][tested]
        for trained in photographs
        for tested in photographs
    }
    own = np.mean([gain[(name, name)] for name in photographs])
    other = np.mean([gain[pair] for pair in gain if pair[0] != pair[1]])
    assert own > other + 1.0, gain
    assert gain[("flower", "flower")] > 1.0 > 0 > gain[("china", "flower")], gain
    assert set(result["examples"]["china"]) == {"low", "bicubic", "images", "china", "flower"}
