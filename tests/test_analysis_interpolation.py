import numpy as np
import pytest

from aekeras.analysis import interpolation
from aekeras.models import ConditionalVAE


def test_endpoints_and_linearity(trained_dense, digits):
    result = interpolation(trained_dense, digits[0], digits[1], steps=10)
    assert result["pixel"].shape == result["latent"].shape == (10, 28, 28, 1)
    np.testing.assert_allclose(result["pixel"][0], digits[0])
    np.testing.assert_allclose(result["pixel"][-1], digits[1], atol=1e-6)
    np.testing.assert_allclose(result["pixel"][4], (5 / 9) * digits[0] + (4 / 9) * digits[1], atol=1e-6)
    # Latent endpoints are the decoded endpoints.
    np.testing.assert_allclose(result["latent"][0], result["decoded_endpoints"][0], atol=1e-5)
    np.testing.assert_allclose(result["latent"][-1], result["decoded_endpoints"][1], atol=1e-5)
    assert not np.allclose(result["latent"][4], result["pixel"][4], atol=0.05)


def test_a_conditional_vae_interpolates_within_the_class_it_is_given(digits):
    """It was refused: the analysis passed no label."""
    cvae = ConditionalVAE(latent_dim=2, hidden_dims=(8,), num_classes=10)
    result = interpolation(cvae, digits[0], digits[1], steps=5, label=4)
    np.testing.assert_allclose(result["latent"][0], result["decoded_endpoints"][0], atol=1e-5)
    np.testing.assert_allclose(
        result["latent"], cvae.interpolate(digits[0], digits[1], 5, label=4), atol=1e-6
    )
    assert not np.allclose(
        result["latent"], interpolation(cvae, digits[0], digits[1], steps=5, label=9)["latent"]
    )


def test_8_bit_pixels_are_refused(trained_dense, digits):
    """Their pixel path ran 0-255, shown all white, beside a decoded path on [0, 1]."""
    pixels = np.round(digits[:2] * 255).astype(np.uint8)
    with pytest.raises(
        ValueError,
        match=r"the images to interpolate must be floats on \[0, 1\], got uint8 \(scale 8-bit pixels",
    ):
        interpolation(trained_dense, pixels[0], pixels[1])
