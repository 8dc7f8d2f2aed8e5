"""Part 4: interpolating between two digits in pixel space and in latent space."""

import numpy as np

from aekeras.analysis.metrics import checked_references


def interpolation(model, start, end, steps=10, *, label=None):
    """Linear interpolation between two [0, 1] images, in pixels and in codes.

    Pixel space blends the images themselves, (1 - t) a + t b, and shows a
    cross-fade; latent space decodes (1 - t) h(a) + t h(b), which stays on the
    learned manifold of digits.

    Args:
        model: a trained aekeras autoencoder.
        start, end: images of the model's shape on [0, 1].
        steps: number of points, endpoints included.
        label: a conditional VAE's class, read with both images and kept
            along the path (`interpolate`'s).

    Returns:
        `{"t": [steps], "pixel": [steps, *shape], "latent": [steps, *shape],
        "decoded_endpoints": [2, *shape]}` on [0, 1].
    """
    # 8-bit pixels blended to a 0-255 path beside a decoded one on [0, 1].
    start, end = (checked_references(image, "the images to interpolate") for image in (start, end))
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    weights = t.reshape((-1,) + (1,) * np.ndim(start))
    pixel = (1 - weights) * start + weights * end
    latent = model.interpolate(start, end, steps, label=label)
    endpoints = model.reconstruct(np.stack([start, end]), labels=[label] * 2)
    return {"t": t, "pixel": pixel, "latent": latent, "decoded_endpoints": endpoints}
