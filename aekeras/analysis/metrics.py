"""Image-quality metrics on the [0, 1] scale."""

import numpy as np
import tensorflow as tf

# PSNR of a perfect repair is infinite; it is capped here so means stay finite.
MAX_PSNR = 100.0


def to_unit_range(images, value_range):
    """Maps images from a model's `value_range` to [0, 1]."""
    low, high = value_range
    return (np.asarray(images, np.float32) - low) / (high - low)


def psnr(images, references):
    """Per-image PSNR in dB of [0, 1] images, capped at `MAX_PSNR`."""
    mse = np.mean(np.square(np.asarray(images) - np.asarray(references)).reshape(len(images), -1), axis=1)
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(1.0 / mse)
    return np.minimum(values, MAX_PSNR)


def image_metrics(images, references):
    """Mean MSE, PSNR (dB) and SSIM of [0, 1] images against references."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    references = np.asarray(references, np.float32)
    ssim = tf.image.ssim(tf.constant(images), tf.constant(references), max_val=1.0).numpy()
    return {
        "mse": float(np.mean(np.square(images - references))),
        "psnr": float(np.mean(psnr(images, references))),
        "ssim": float(np.mean(ssim)),
    }
