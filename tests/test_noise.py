import numpy as np
import pytest

from aekeras import noise


def test_dropout_is_torch_dropout_applied_to_ones():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(size=(200, 784)).astype(np.float32)
    mask = np.asarray(noise.dropout(np.ones((200, 784), np.float32), uniform, 0.5))
    # nn.Dropout(p=0.5)(ones): values 0 or 1 / (1 - p) = 2, about half each.
    assert set(np.unique(mask)) == {0.0, 2.0}
    assert np.mean(mask == 0) == pytest.approx(0.5, abs=0.01)
    np.testing.assert_array_equal(mask == 0, uniform < 0.5)
    # Rate 0 keeps every value, a draw of exactly 0 too.
    np.testing.assert_array_equal(
        noise.dropout(np.ones((1, 3), np.float32), np.zeros((1, 3), np.float32), 0.0), 1
    )
    unscaled = np.asarray(noise.dropout(np.ones((200, 784), np.float32), uniform, 0.5, scale_kept=False))
    assert set(np.unique(unscaled)) == {0.0, 1.0}


def test_dropout_on_images_in_minus_one_one():
    images = np.linspace(-1, 1, 784, dtype=np.float32).reshape(1, 784)
    uniform = np.tile([0.1, 0.9], 392).astype(np.float32).reshape(1, 784)
    corrupted = np.asarray(noise.dropout(images, uniform, 0.5))
    np.testing.assert_allclose(corrupted[0, 1::2], 2 * images[0, 1::2])
    assert np.all(corrupted[0, ::2] == 0)


def test_gaussian_is_clipped_to_the_value_range():
    images = np.full((1000,), 0.5, np.float32)
    normal = np.random.default_rng(1).normal(size=1000).astype(np.float32)
    corrupted = np.asarray(noise.gaussian(images, normal, 0.3, (0.0, 1.0)))
    np.testing.assert_allclose(corrupted, np.clip(0.5 + 0.3 * normal, 0, 1), rtol=1e-6)
    assert corrupted.min() >= 0 and corrupted.max() <= 1


def test_salt_and_pepper_hits_a_fraction_with_both_ends():
    images = np.full((100000,), 0.25, np.float32)
    uniform = np.random.default_rng(2).uniform(size=100000).astype(np.float32)
    corrupted = np.asarray(noise.salt_and_pepper(images, uniform, 0.2, (-1.0, 1.0)))
    assert np.mean(corrupted == -1) == pytest.approx(0.1, abs=0.005)
    assert np.mean(corrupted == 1) == pytest.approx(0.1, abs=0.005)
    assert np.mean(corrupted == 0.25) == pytest.approx(0.8, abs=0.005)


def test_corrupt_dispatches_and_refuses_unknown_kinds():
    x = np.ones((2, 3), np.float32)
    u = np.full((2, 3), 0.3, np.float32)
    np.testing.assert_array_equal(noise.corrupt(x, "dropout", 0.5, (0, 1), u), np.zeros((2, 3)))
    # Each kind reaches its own function, with the draws it reads.
    np.testing.assert_allclose(noise.corrupt(x, "gaussian", 0.5, (0, 1), -u), np.full((2, 3), 0.85))
    np.testing.assert_array_equal(noise.corrupt(x * 0.5, "salt_and_pepper", 0.5, (0, 1), u), np.ones((2, 3)))
    assert [noise.random_distribution(k) for k in noise.NOISE_KINDS] == [
        "normal" if k == "gaussian" else "uniform" for k in noise.NOISE_KINDS
    ]
    assert set(noise.NOISE_KINDS) == {"dropout", "gaussian", "salt_and_pepper"}
    with pytest.raises(ValueError, match="unknown noise 'speckle'"):
        noise.corrupt(x, "speckle", 0.5, (0, 1), u)
