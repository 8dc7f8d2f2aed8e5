"""Parts 1 and 2: reconstructions, and the encoder's kernels as images."""

import numpy as np

from aekeras.analysis.metrics import image_metrics, to_unit_range


def reconstructions(models, images):
    """Reconstructs [0, 1] test images with each model.

    Args:
        models: dict name -> aekeras autoencoder.
        images: float32 `[n, 28, 28, 1]` on [0, 1].

    Returns:
        `{"images": images, "reconstructions": {name: [n, 28, 28, 1]},
        "metrics": {name: {"mse", "psnr", "ssim"}}}`, all on [0, 1].
    """
    outputs, metrics = {}, {}
    for name, model in models.items():
        low, high = model.value_range
        scaled = images * (high - low) + low
        outputs[name] = to_unit_range(model.predict(scaled, verbose=0), model.value_range)
        metrics[name] = image_metrics(outputs[name], images)
    return {"images": images, "reconstructions": outputs, "metrics": metrics}


def encoder_kernels(model, count=20):
    """The first `count` rows of a dense encoder's weights as 28x28 images.

    Row j holds the weights from every pixel to code unit j (the kernel's
    column j), the "filter" the lecture shows.
    """
    kernel = next(
        layer.kernel.numpy() for layer in model.encoder.layers if hasattr(layer, "kernel")
    )
    if kernel.shape[0] != 784:
        raise ValueError(f"expected a dense encoder reading 784 pixels, got a kernel of shape {kernel.shape}")
    return np.transpose(kernel)[:count].reshape(count, 28, 28)
