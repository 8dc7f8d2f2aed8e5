import numpy as np
import pytest

from aekeras.analysis import latent_grid, latent_scatter
from aekeras.models import VAE


def test_grid_at_normal_quantiles(trained_vae2):
    result = latent_grid(trained_vae2, size=5)
    assert result["images"].shape == (5, 5, 28, 28, 1)
    z = result["z"]
    np.testing.assert_allclose(z[0, 0], [-1.6448536, 1.6448536], rtol=1e-5)  # top left: low z1, high z2
    np.testing.assert_allclose(z[2, 2], [0, 0], atol=1e-6)
    np.testing.assert_allclose(
        result["images"][1, 3], trained_vae2.decode(z[1, 3][None]).numpy()[0], atol=1e-6
    )
    with pytest.raises(ValueError, match="needs a VAE with latent_dim=2"):
        latent_grid(VAE(latent_dim=3))


def test_scatter(trained_vae2, digits, mnist_test_arrays):
    result = latent_scatter(trained_vae2, digits[:100], mnist_test_arrays[1][:100])
    assert result["z_mean"].shape == (100, 2) and result["labels"].shape == (100,)
