"""Part 8: super-resolution, from half the size back to the full size."""

import keras
import numpy as np
import tensorflow as tf

from aekeras import models
from aekeras.analysis.metrics import psnr


def downsample(images, factor=2):
    """Average pooling by `factor`: `[n, h, w, c]` -> `[n, h // factor, w // factor, c]`."""
    return tf.nn.avg_pool2d(images, ksize=factor, strides=factor, padding="VALID").numpy()


def super_resolution_model(low_shape, filters=32):
    """A convolutional autoencoder from `low_shape` images to twice their size, on [0, 1]."""
    encoder = keras.Sequential(
        [
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv_0"),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv_1"),
        ],
        name="encoder",
    )
    decoder = keras.Sequential(
        [
            keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu", name="up"),
            keras.layers.Conv2D(low_shape[-1], 3, padding="same", activation="sigmoid", name="output"),
        ],
        name="decoder",
    )
    return models.Autoencoder(
        encoder, decoder, reconstruction_loss="mse", value_range=(0, 1), image_shape=tuple(low_shape)
    )


def even_crop(images):
    """Images cut to even height and width, so that halving and doubling give them back."""
    height, width = images.shape[1:3]
    return images[:, : height - height % 2, : width - width % 2]


def super_resolution(model, images):
    """Upsamples average-pooled test images with the model and with bicubic.

    Args:
        model: a trained `super_resolution_model` (half size -> full size).
        images: `[n, h, w, c]` on [0, 1], h and w even (see `even_crop`).

    Returns:
        `{"low", "bicubic", "model", "images", "psnr": {"bicubic", "model"}}`.
    """
    low = downsample(images)
    bicubic = np.clip(tf.image.resize(low, images.shape[1:3], method="bicubic").numpy(), 0.0, 1.0)
    upsampled = model.reconstruct(low)
    return {
        "low": low,
        "bicubic": bicubic,
        "model": upsampled,
        "images": images,
        "psnr": {
            "bicubic": float(np.mean(psnr(bicubic, images))),
            "model": float(np.mean(psnr(upsampled, images))),
        },
    }
