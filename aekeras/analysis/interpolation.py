"""Part 4: interpolating between two digits in pixel space and in latent space."""

import numpy as np


def interpolation(model, start, end, steps=10):
    """Linear interpolation between two [0, 1] images, in pixels and in codes.

    Pixel space blends the images themselves, (1 - t) a + t b, and shows a
    cross-fade; latent space decodes (1 - t) h(a) + t h(b), which stays on the
    learned manifold of digits.

    Args:
        model: a trained aekeras autoencoder.
        start, end: images of the model's shape on [0, 1].
        steps: number of points, endpoints included.

    Returns:
        `{"t": [steps], "pixel": [steps, *shape], "latent": [steps, *shape],
        "decoded_endpoints": [2, *shape]}` on [0, 1].
    """
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    weights = t.reshape((-1,) + (1,) * np.ndim(start))
    pixel = (1 - weights) * start + weights * end
    latent = model.interpolate(start, end, steps)
    endpoints = model.reconstruct(np.stack([start, end]))
    return {"t": t, "pixel": pixel, "latent": latent, "decoded_endpoints": endpoints}
