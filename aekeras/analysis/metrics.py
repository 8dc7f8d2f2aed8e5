"""Image-quality metrics on the [0, 1] scale."""

import numpy as np
import tensorflow as tf

from aekeras import losses

# PSNR of a perfect repair is infinite; it is capped here so means stay finite.
MAX_PSNR = 100.0


def mse(images, references):
    """Per-image mean squared error (`aekeras.losses.squared_error`), as numpy."""
    return np.asarray(
        losses.squared_error(np.asarray(images, np.float32), np.asarray(references, np.float32))
    )


def psnr(images, references):
    """Per-image PSNR in dB of [0, 1] images, capped at `MAX_PSNR`."""
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(1.0 / mse(images, references))
    return np.minimum(values, MAX_PSNR)


def pooled_psnr(images, references):
    """PSNR in dB of a whole set: of its mean squared error, as super-resolution benchmarks score a picture.

    Unlike the mean of per-image PSNRs, flat images (tens of dB from a
    near-zero error) do not outweigh textured ones.
    """
    return float(10.0 * np.log10(1.0 / np.mean(mse(images, references))))


def image_metrics(images, references):
    """Mean MSE, PSNR (dB) and SSIM of [0, 1] images against references."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    references = np.asarray(references, np.float32)
    # SSIM's 11x11 window needs images at least that large; smaller ones are
    # measured without it.
    ssim = (
        tf.image.ssim(tf.constant(images), tf.constant(references), max_val=1.0).numpy()
        if images.ndim == 4 and min(images.shape[1:3]) >= 11
        else np.array([np.nan])
    )
    return {
        "mse": float(np.mean(mse(images, references))),
        "psnr": float(np.mean(psnr(images, references))),
        "ssim": float(np.mean(ssim)),
    }
