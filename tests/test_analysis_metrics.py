import numpy as np
import pytest

from aekeras.analysis import image_metrics, psnr
from aekeras.analysis.metrics import MAX_PSNR
from aekeras.data import to_unit_scale


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


def test_to_unit_scale():
    np.testing.assert_allclose(to_unit_scale(np.array([-1.0, 0.0, 1.0]), (-1, 1)), [0, 0.5, 1])


def test_image_metrics_of_rgb_and_small_images():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(size=(4, 32, 32, 3)).astype(np.float32)
    assert image_metrics(rgb, rgb)["ssim"] == pytest.approx(1.0)
    small = rng.uniform(size=(4, 8, 8, 1)).astype(np.float32)
    metrics = image_metrics(small, np.clip(small + 0.1, 0, 1))
    # SSIM's 11x11 window does not fit 8x8 images: reported as NaN, not an error.
    assert np.isnan(metrics["ssim"]) and 0 < metrics["mse"] <= 0.01


def test_references_off_the_unit_scale_are_refused(digits):
    with pytest.raises(ValueError, match=r"must be floats on \[0, 1\], got uint8 \(scale 8-bit pixels"):
        psnr(digits[:2], np.uint8(digits[:2] * 255))
    with pytest.raises(ValueError, match=r"must be floats on \[0, 1\], got values from 0 to 255"):
        image_metrics(digits[:2], digits[:2] * 255)
