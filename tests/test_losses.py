import numpy as np
import pytest

from aekeras import losses


def test_squared_error_per_example_mean_and_sum():
    targets = np.zeros((2, 2, 2, 1), np.float32)
    reconstructions = np.stack([np.full((2, 2, 1), 1.0), np.arange(4.0).reshape(2, 2, 1)]).astype(np.float32)
    np.testing.assert_allclose(losses.squared_error(targets, reconstructions), [1.0, 14 / 4])
    np.testing.assert_allclose(losses.squared_error(targets, reconstructions, "sum"), [4.0, 14.0])


def test_mean_over_batch_equals_torch_mse_loss():
    rng = np.random.default_rng(0)
    targets, reconstructions = rng.uniform(-1, 1, (2, 8, 784)).astype(np.float32)
    # nn.MSELoss() averages over every element; equal batches make the means agree.
    assert float(np.mean(losses.squared_error(targets, reconstructions))) == pytest.approx(
        float(np.mean((targets - reconstructions) ** 2)), rel=1e-6
    )


def test_binary_crossentropy_matches_its_formula():
    rng = np.random.default_rng(1)
    targets = rng.uniform(0, 1, (3, 4, 4, 1)).astype(np.float32)
    probs = rng.uniform(0.05, 0.95, (3, 4, 4, 1)).astype(np.float32)
    expected = -(targets * np.log(probs) + (1 - targets) * np.log(1 - probs)).reshape(3, -1)
    np.testing.assert_allclose(losses.binary_crossentropy(targets, probs), expected.mean(-1), rtol=1e-5)
    np.testing.assert_allclose(losses.binary_crossentropy(targets, probs, "sum"), expected.sum(-1), rtol=1e-5)


def test_binary_crossentropy_stays_finite_at_saturated_outputs():
    targets = np.array([[0.0, 1.0]], np.float32)
    values = losses.binary_crossentropy(targets, np.array([[1.0, 0.0]], np.float32))
    assert np.all(np.isfinite(values)) and float(values[0]) > 10


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown reconstruction loss 'l1'"):
        losses.reconstruction_loss("l1", np.zeros((1, 1)), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        losses.squared_error(np.zeros((1, 1)), np.zeros((1, 1)), "max")
