"""Part 9: the 2-D latent plane of a VAE."""

from statistics import NormalDist

import numpy as np


def latent_grid(vae, size=15, quantiles=(0.05, 0.95), *, label=None):
    """Decodes a size x size grid over the latent plane at normal quantiles.

    The grid points are N(0, 1) quantiles, so each cell covers equal prior
    mass, as in the Keras VAE example's figure. A conditional VAE decodes
    the grid as class `label`.

    Returns:
        `{"z": [size, size, 2], "images": [size, size, *image_shape]}`.
    """
    if vae.latent_dim != 2:
        raise ValueError(f"latent_grid needs a VAE with latent_dim=2, got {vae.latent_dim}")
    values = np.array([NormalDist().inv_cdf(q) for q in np.linspace(*quantiles, size)], np.float32)
    # Rows go from high z2 (top) to low, as on a plot's y axis.
    z = np.stack(np.meshgrid(values, values[::-1]), axis=-1)
    if vae.conditioned and label is None:
        raise ValueError(f"latent_grid of a {type(vae).__name__} decodes one class: pass label=")
    count = size * size
    conditions = vae.conditions([label] * count, count)
    images = np.asarray(vae.decode(z.reshape(-1, 2), **conditions)).reshape(size, size, *vae.image_shape)
    return {"z": z, "images": images}


def latent_scatter(vae, images, labels):
    """The test images' `z_mean`, with their labels (or None), for a scatter plot; a conditional VAE's given them."""
    z_mean, _ = vae.encode_distribution(images, **vae.conditions(labels, len(images)))
    return {"z_mean": np.asarray(z_mean), "labels": None if labels is None else np.asarray(labels)}
