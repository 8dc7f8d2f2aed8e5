"""Image-quality metrics on the [0, 1] scale."""

import numpy as np
import tensorflow as tf

from aekeras import losses

# PSNR of a perfect repair is infinite; it is capped here so means stay finite.
MAX_PSNR = 100.0


def checked_references(references, what="reference images"):
    """`references` as float32, or ValueError naming them `what` unless they are float images on [0, 1].

    Every analysis measures on the [0, 1] scale; 8-bit pixels or 0-255
    floats would give errors in the thousands without a word.
    """
    references = np.asarray(references)
    if not np.issubdtype(references.dtype, np.floating):
        raise ValueError(
            f"{what} must be floats on [0, 1], got {references.dtype} (scale 8-bit pixels "
            "with aekeras.data.unit_scale)"
        )
    low, high = (float(np.min(references)), float(np.max(references))) if references.size else (0, 0)
    if not (low >= 0.0 and high <= 1.0):
        raise ValueError(f"{what} must be floats on [0, 1], got values from {low:g} to {high:g}")
    return references.astype(np.float32, copy=False)


def mse(images, references):
    """Per-image mean squared error (`aekeras.losses.squared_error`) against [0, 1] references, as numpy."""
    return np.asarray(losses.squared_error(np.asarray(images, np.float32), checked_references(references)))


def psnr(images, references):
    """Per-image PSNR in dB of [0, 1] images, capped at `MAX_PSNR`."""
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(1.0 / mse(images, references))
    return np.minimum(values, MAX_PSNR)


def pooled_psnr(images, references):
    """PSNR in dB of a whole set (of its mean squared error, as super-resolution benchmarks score a picture), capped at `MAX_PSNR`.

    Unlike the mean of per-image PSNRs, flat images (tens of dB from a
    near-zero error) do not outweigh textured ones.
    """
    with np.errstate(divide="ignore"):
        return float(min(10.0 * np.log10(1.0 / np.mean(mse(images, references))), MAX_PSNR))


def image_metrics(images, references):
    """Mean MSE, PSNR (dB) and SSIM of [0, 1] images against references.

    `images` are clipped to [0, 1] first. Returns `{"mse", "psnr", "ssim"}`
    as floats; `"ssim"` is NaN for flat vectors and for images smaller than
    SSIM's 11x11 window (such as sklearn's 8x8 digits).
    """
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    references = checked_references(references)
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
