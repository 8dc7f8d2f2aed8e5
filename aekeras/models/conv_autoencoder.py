"""The lesson's convolutional autoencoder."""

import math

import keras

from aekeras.models.base_autoencoder import BaseAutoencoder

DOWNSAMPLING = ("pool", "strided")


@keras.saving.register_keras_serializable(package="aekeras")
class ConvAutoencoder(BaseAutoencoder):
    """A convolutional autoencoder for 28x28 images.

    The encoder halves the resolution once per entry of `filters` (3x3
    convolutions with max pooling, or strided convolutions), 28 -> 14 -> 7 ->
    4 with the default three levels; the decoder mirrors it with upsampling
    (or transposed convolutions), cropping where the encoder rounded up, back
    to 28x28x1. With the defaults this is the well-known Keras "16-8-8"
    convolutional autoencoder: a 4x4x8 code, sigmoid output on [0, 1] images,
    binary cross-entropy. `latent_dim` adds a dense code vector between the
    two (`latent_dim=2` for latent-space plots).

    Args:
        filters: filters per level, from the input down.
        latent_dim: size of a dense code vector; `None` keeps the spatial
            code of the last level.
        downsampling: `"pool"` (Conv2D + MaxPooling2D; Conv2D + nearest 2x
            upsampling) or `"strided"` (strided Conv2D, strided
            Conv2DTranspose).
        activation: activation of the hidden convolutions.
        output_activation: activation of the reconstruction.
        reconstruction_loss: `"binary_crossentropy"` or `"mse"`.
        value_range: `(0, 1)` (or `(-1, 1)` with `output_activation="tanh"`
            and MSE).
        image_shape: shape of one input image, height and width divisible
            into `len(filters)` halvings.
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> model = aekeras.models.ConvAutoencoder(filters=(16, 8, 8))
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train"), epochs=25)
    """

    def __init__(
        self,
        filters=(16, 8, 8),
        latent_dim=None,
        downsampling="pool",
        activation="relu",
        output_activation="sigmoid",
        reconstruction_loss="binary_crossentropy",
        value_range=(0.0, 1.0),
        image_shape=(28, 28, 1),
        **kwargs,
    ):
        filters = tuple(int(f) for f in filters)
        if not filters or min(filters) <= 0:
            raise ValueError(f"filters must be positive integers, got {filters!r}")
        if latent_dim is not None and not (isinstance(latent_dim, int) and latent_dim > 0):
            raise ValueError(f"latent_dim must be a positive integer or None, got {latent_dim!r}")
        if downsampling not in DOWNSAMPLING:
            raise ValueError(f"downsampling must be one of {DOWNSAMPLING}, got {downsampling!r}")
        image_shape = tuple(int(d) for d in image_shape)
        # Spatial sizes per level: 28 -> 14 -> 7 -> 4 ("same" padding rounds up).
        sizes = [image_shape[:2]]
        for _ in filters:
            sizes.append(tuple(math.ceil(d / 2) for d in sizes[-1]))

        encoder_layers = []
        for level, f in enumerate(filters):
            if downsampling == "pool":
                encoder_layers += [
                    keras.layers.Conv2D(f, 3, padding="same", activation=activation, name=f"conv_{level}"),
                    keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{level}"),
                ]
            else:
                encoder_layers.append(
                    keras.layers.Conv2D(
                        f, 3, strides=2, padding="same", activation=activation, name=f"conv_{level}"
                    )
                )
        code_shape = (*sizes[-1], filters[-1])
        decoder_layers = []
        if latent_dim is not None:
            encoder_layers += [
                keras.layers.Flatten(name="flatten"),
                keras.layers.Dense(latent_dim, name="latent"),
            ]
            decoder_layers += [
                keras.layers.Dense(math.prod(code_shape), activation=activation, name="unlatent"),
                keras.layers.Reshape(code_shape, name="reshape"),
            ]
        for level in reversed(range(len(filters))):
            if downsampling == "pool":
                decoder_layers += [
                    keras.layers.Conv2D(
                        filters[level], 3, padding="same", activation=activation, name=f"deconv_{level}"
                    ),
                    # Nearest-neighbour 2x, as UpSampling2D, but through an
                    # image resize that keeps static shapes: UpSampling2D's
                    # repeat loses them and then fails TFLite conversion.
                    keras.layers.Resizing(
                        *(2 * d for d in sizes[level + 1]),
                        interpolation="nearest",
                        name=f"upsample_{level}",
                    ),
                ]
            else:
                decoder_layers.append(
                    keras.layers.Conv2DTranspose(
                        filters[level], 3, strides=2, padding="same", activation=activation,
                        name=f"deconv_{level}",
                    )
                )
            excess = [2 * s - t for s, t in zip(sizes[level + 1], sizes[level])]
            if any(excess):
                decoder_layers.append(
                    keras.layers.Cropping2D(((0, excess[0]), (0, excess[1])), name=f"crop_{level}")
                )
        decoder_layers.append(
            keras.layers.Conv2D(
                image_shape[-1], 3, padding="same", activation=output_activation, name="output"
            )
        )
        super().__init__(
            encoder=keras.Sequential(encoder_layers, name="encoder"),
            decoder=keras.Sequential(decoder_layers, name="decoder"),
            reconstruction_loss=reconstruction_loss,
            value_range=value_range,
            image_shape=image_shape,
            **kwargs,
        )
        self.filters = filters
        self.latent_dim = latent_dim
        self.downsampling = downsampling
        self.activation = activation
        self.output_activation = output_activation
        self.build((None, *self.image_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "latent_dim": self.latent_dim,
                "downsampling": self.downsampling,
                "activation": self.activation,
                "output_activation": self.output_activation,
                "reconstruction_loss": self.reconstruction_loss,
                "value_range": self.value_range,
                "image_shape": self.image_shape,
            }
        )
        return config
