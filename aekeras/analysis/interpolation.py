"""Part 4: interpolating between two digits in pixel space and in latent space."""

import numpy as np

from aekeras.analysis.metrics import to_unit_range


def interpolation(model, start, end, steps=10):
    """Linear interpolation between two [0, 1] images, in pixels and in codes.

    Pixel space blends the images themselves, (1 - t) a + t b, and shows a
    cross-fade; latent space decodes (1 - t) h(a) + t h(b), which stays on the
    learned manifold of digits.

    Args:
        model: a trained aekeras autoencoder.
        start, end: `[28, 28, 1]` images on [0, 1].
        steps: number of points, endpoints included.

    Returns:
        `{"t": [steps], "pixel": [steps, 28, 28, 1], "latent": [steps, 28,
        28, 1], "decoded_endpoints": [2, 28, 28, 1]}` on [0, 1].
    """
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    weights = t.reshape(-1, 1, 1, 1)
    pixel = (1 - weights) * start + weights * end
    low, high = model.value_range
    codes = np.asarray(model.encode(np.stack([start, end]) * (high - low) + low))
    code_weights = t.reshape((-1,) + (1,) * (codes.ndim - 1))
    blended = (1 - code_weights) * codes[0] + code_weights * codes[1]
    latent = to_unit_range(model.decode(blended), model.value_range)
    endpoints = to_unit_range(model.decode(codes), model.value_range)
    return {"t": t, "pixel": pixel, "latent": latent, "decoded_endpoints": endpoints}
