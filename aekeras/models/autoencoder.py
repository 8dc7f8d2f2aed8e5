"""An autoencoder made of any Keras encoder and decoder."""

import keras

from aekeras.models.base import BaseAutoencoder, resolve_image_spec


@keras.saving.register_keras_serializable(package="aekeras")
class Autoencoder(BaseAutoencoder):
    """An autoencoder made of any encoder and decoder, trained by `fit`.

    Args:
        encoder: a Keras layer or model mapping inputs to codes.
        decoder: a Keras layer or model mapping codes to reconstructions.
        reconstruction_loss: `"mse"` or `"binary_crossentropy"` (which needs
            outputs and targets in [0, 1]).
        value_range: `(low, high)`, the pixel scale the model reads and
            writes: `(0, 1)` or `(-1, 1)`; by default that of `image_spec`,
            else `(0, 1)`.
        image_shape: shape of one input example; by default that of
            `image_spec`, else MNIST's.
        image_spec: the `aekeras.data.ImageSpec` of the inputs.
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> encoder = keras.Sequential([keras.layers.Flatten(),
    ...                             keras.layers.Dense(32, "relu")])
    >>> decoder = keras.Sequential([keras.layers.Dense(784, "sigmoid"),
    ...                             keras.layers.Reshape((28, 28, 1))])
    >>> model = aekeras.models.Autoencoder(encoder, decoder)
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train"), epochs=5)
    """

    config_fields = ("reconstruction_loss",)

    def __init__(
        self,
        encoder,
        decoder,
        reconstruction_loss="mse",
        value_range=None,
        image_shape=None,
        image_spec=None,
        **kwargs,
    ):
        spec = resolve_image_spec(image_spec, image_shape, value_range, (0.0, 1.0))
        super().__init__(encoder, decoder, spec, reconstruction_loss, **kwargs)
        self.build((None, *self.image_shape))

    def get_config(self):
        config = super().get_config()
        config["encoder"] = keras.saving.serialize_keras_object(self.encoder)
        config["decoder"] = keras.saving.serialize_keras_object(self.decoder)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
