"""Part 8: super-resolution, 14x14 back to 28x28."""

import keras
import numpy as np
import tensorflow as tf

from aekeras import models
from aekeras.analysis.metrics import psnr


def downsample(images):
    """2x2 average pooling: [n, 28, 28, 1] -> [n, 14, 14, 1]."""
    return tf.nn.avg_pool2d(images, ksize=2, strides=2, padding="VALID").numpy()


def super_resolution_model(filters=32):
    """A convolutional autoencoder from 14x14 inputs to 28x28 outputs on [0, 1]."""
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
            keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="output"),
        ],
        name="decoder",
    )
    return models.Autoencoder(
        encoder, decoder, reconstruction_loss="mse", value_range=(0, 1), image_shape=(14, 14, 1)
    )


def super_resolution(model, images):
    """Upsamples average-pooled test images with the model and with bicubic.

    Args:
        model: a trained `super_resolution_model()` (14x14 -> 28x28).
        images: `[n, 28, 28, 1]` on [0, 1].

    Returns:
        `{"low", "bicubic", "model", "images", "psnr": {"bicubic", "model"}}`.
    """
    low = downsample(images)
    bicubic = np.clip(tf.image.resize(low, (28, 28), method="bicubic").numpy(), 0.0, 1.0)
    upsampled = model.predict(low, batch_size=1000, verbose=0)
    return {
        "low": low,
        "bicubic": bicubic,
        "model": upsampled,
        "images": images,
        "psnr": {"bicubic": float(np.mean(psnr(bicubic, images))), "model": float(np.mean(psnr(upsampled, images)))},
    }
