"""Parts 1 and 2: reconstructions, and the encoder's kernels as images."""

import numpy as np

from aekeras.analysis.metrics import image_metrics


def reconstructions(models, images):
    """Reconstructs [0, 1] test images with each model.

    Args:
        models: dict name -> aekeras autoencoder.
        images: float32 `[n, *image_shape]` on [0, 1].

    Returns:
        `{"images": images, "reconstructions": {name: [n, ...]},
        "metrics": {name: {"mse", "psnr", "ssim"}}}`, all on [0, 1].
    """
    outputs = {name: model.reconstruct(images) for name, model in models.items()}
    metrics = {name: image_metrics(output, images) for name, output in outputs.items()}
    return {"images": images, "reconstructions": outputs, "metrics": metrics}


def encoder_kernels(model, count=20):
    """The first `count` rows of a dense encoder's first weights, as images of the model's shape.

    Row j holds the weights from every pixel to unit j (the kernel's column
    j), the "filter" the lecture shows.
    """
    kernel = next(layer.kernel.numpy() for layer in model.encoder.layers if hasattr(layer, "kernel"))
    spec = model.image_spec
    if kernel.ndim != 2 or kernel.shape[0] != spec.size:
        raise ValueError(
            f"expected a dense encoder reading {spec.size} pixels, got a kernel of shape {kernel.shape}"
        )
    return np.transpose(kernel)[:count].reshape(-1, *spec.shape)
