"""The NYU lecture's fully connected autoencoder."""

import keras

from aekeras.choices import NARROW_CODE
from aekeras.models import blocks
from aekeras.models.base import BaseAutoencoder, resolve_image_spec


@keras.saving.register_keras_serializable(package="aekeras")
class DenseAutoencoder(BaseAutoencoder):
    """A fully connected autoencoder, input -> latent -> input, for any image shape.

    With the defaults this is the NYU Deep Learning lecture's model: one
    linear layer to a 30-unit code with tanh, one linear layer back with
    tanh, on inputs scaled to [-1, 1], trained with MSE (Adam 1e-3, batch
    256, 20 epochs in the lecture). `latent_dim=500` gives its over-complete
    variant. `tied_weights=True` makes each decoder kernel the transpose of
    the matching encoder kernel; with linear activations the model then
    learns the principal subspace of the data, the lecture's link to PCA.

    Args:
        latent_dim: size of the code; 30 in the lecture, 500 over-complete.
        hidden_dims: sizes of extra hidden layers from the input to the
            code; the decoder mirrors them. Empty in the lecture.
        activation: activation of the code layer (`"tanh"`; `None` for
            linear).
        hidden_activation: activation of the extra hidden layers.
        output_activation: activation of the reconstruction (`"tanh"` for
            [-1, 1] images, `"sigmoid"` for [0, 1]).
        tied_weights: decoder kernels are the encoder kernels transposed.
        image_shape: shape of one input example, `(h, w, c)` or `(size,)`;
            by default that of `image_spec`, else MNIST's.
        reconstruction_loss: `"mse"` or `"binary_crossentropy"`.
        value_range: pixel scale of inputs and outputs; by default that of
            `image_spec`, else `(-1, 1)`.
        kernel_initializer: initializer of the dense kernels; the default,
            `"torch_linear"`, is PyTorch's `nn.Linear` default, as in the
            lecture. Any Keras initializer name or config works too.
        image_spec: the `aekeras.data.ImageSpec` of the inputs (for example
            a data source's `.spec`).
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> model = aekeras.models.DenseAutoencoder(latent_dim=30)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> train = aekeras.data.load("mnist", "train", value_range=(-1, 1))
    >>> model.fit(train, epochs=20)
    """

    config_fields = (
        "latent_dim",
        "hidden_dims",
        "activation",
        "hidden_activation",
        "output_activation",
        "tied_weights",
        "reconstruction_loss",
        "kernel_initializer",
    )

    def __init__(
        self,
        latent_dim=30,
        hidden_dims=(),
        activation="tanh",
        hidden_activation="relu",
        output_activation="tanh",
        tied_weights=False,
        image_shape=None,
        reconstruction_loss="mse",
        value_range=None,
        kernel_initializer="torch_linear",
        image_spec=None,
        **kwargs,
    ):
        spec = resolve_image_spec(image_spec, image_shape, value_range, (-1.0, 1.0))
        latent_dim = blocks.check_size("latent_dim", latent_dim)
        hidden_dims = blocks.check_sizes("hidden_dims", hidden_dims, allow_empty=True)
        if not isinstance(kernel_initializer, (str, dict)):
            raise ValueError(
                f"kernel_initializer must be a name or a config dict, got {type(kernel_initializer).__name__}"
            )
        encoder = blocks.dense_encoder(
            hidden_dims, latent_dim, hidden_activation, activation, kernel_initializer
        )
        encoder_dense = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense)]
        decoder = blocks.dense_decoder(
            spec.shape,
            hidden_dims,
            hidden_activation,
            output_activation,
            kernel_initializer,
            tied_to=encoder_dense if tied_weights else None,
        )
        super().__init__(encoder, decoder, spec, reconstruction_loss, **kwargs)
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.activation = activation
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.tied_weights = tied_weights
        self.kernel_initializer = kernel_initializer
        self.build((None, *self.image_shape))

    @property
    def trains_in_shards(self):
        """The lecture's shape of model (no hidden layers, a code of at most 64) trains in shards by default.

        Two shards against one: the benchmark's race 1.18x and 1.08x (the
        second run's repeats all above 1), and `aekeras train dense`'s epoch
        1.70x and 1.13x, in the two runs before this became the default (one
        earlier run, in which every model sharded, had one shard ahead,
        1.08x, with repeats straddling 1). Wider models are unmeasured and
        train whole batches.
        """
        return not self.hidden_dims and self.latent_dim <= NARROW_CODE
