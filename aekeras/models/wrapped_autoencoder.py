"""The base of variants that change only the objective of an autoencoder."""

import keras

from aekeras.models.base_autoencoder import BaseAutoencoder


@keras.saving.register_keras_serializable(package="aekeras")
class WrappedAutoencoder(BaseAutoencoder):
    """Wraps an aekeras autoencoder and trains its very encoder and decoder.

    Denoising and contractive training change the objective, not the
    architecture: they wrap any dense or convolutional autoencoder, take its
    encoder, decoder, loss and scale, and override `compute_loss_terms`.
    Subclasses add their own arguments to `get_config` and end `__init__`
    with `self.build(...)`.

    Args:
        autoencoder: the aekeras autoencoder to train.
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> class L1Penalised(WrappedAutoencoder):
    ...     loss_term_names = ("reconstruction_loss", "l1_loss")
    ...     def compute_loss_terms(self, inputs, targets, training=False):
    ...         codes = self.encode(inputs, training=training)
    ...         return {
    ...             "reconstruction_loss": self.reconstruction_error(
    ...                 targets, self.decode(codes, training=training)),
    ...             "l1_loss": 1e-3 * keras.ops.sum(keras.ops.abs(codes), axis=-1),
    ...         }
    """

    def __init__(self, autoencoder, **kwargs):
        if not isinstance(autoencoder, BaseAutoencoder):
            raise TypeError(
                f"expected an aekeras autoencoder to wrap, got {type(autoencoder).__name__}"
            )
        super().__init__(
            encoder=autoencoder.encoder,
            decoder=autoencoder.decoder,
            reconstruction_loss=autoencoder.reconstruction_loss,
            value_range=autoencoder.value_range,
            image_shape=autoencoder.image_shape,
            **kwargs,
        )
        self.autoencoder = autoencoder

    def get_config(self):
        config = super().get_config()
        config["autoencoder"] = keras.saving.serialize_keras_object(self.autoencoder)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["autoencoder"] = keras.saving.deserialize_keras_object(config["autoencoder"])
        return cls(**config)
