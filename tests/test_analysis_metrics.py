import numpy as np
import pytest

from aekeras.analysis import image_metrics, psnr, to_unit_range
from aekeras.analysis.metrics import MAX_PSNR


def test_psnr_known_values_and_perfect_repair(digits):
    assert np.all(psnr(digits[:5], digits[:5]) == MAX_PSNR)
    shifted = np.clip(digits[:5] + 0.1, 0, 1)
    expected = 10 * np.log10(1 / np.mean((shifted - digits[:5]) ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(psnr(shifted, digits[:5]), expected, rtol=1e-5)


def test_image_metrics_ranges(digits):
    perfect = image_metrics(digits[:20], digits[:20])
    assert perfect == {"mse": 0.0, "psnr": MAX_PSNR, "ssim": pytest.approx(1.0)}
    noisy = image_metrics(np.random.default_rng(0).uniform(size=digits[:20].shape), digits[:20])
    assert 0 < noisy["mse"] < 1 and noisy["psnr"] < 10 and -1 <= noisy["ssim"] < 0.2


def test_to_unit_range():
    np.testing.assert_allclose(to_unit_range(np.array([-1.0, 0.0, 1.0]), (-1, 1)), [0, 0.5, 1])
