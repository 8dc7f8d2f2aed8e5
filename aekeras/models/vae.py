"""The variational autoencoder."""

import math

import keras
import tensorflow as tf
from keras import ops

from aekeras import losses
from aekeras.models.base_autoencoder import BaseAutoencoder, draw_for_global_batch

ARCHITECTURES = ("dense", "conv")


@keras.saving.register_keras_serializable(package="aekeras")
class VAE(BaseAutoencoder):
    """A variational autoencoder with a Bernoulli decoder on [0, 1] images.

    The encoder gives `z_mean` and `z_log_var`; training samples
    `z = z_mean + exp(0.5 * z_log_var) * eps` (eps from the model's seeded
    `SeedGenerator`) and minimises the negative ELBO: the reconstruction
    term, binary cross-entropy summed over pixels per example, plus
    `beta` times KL(q(z|x) || N(0, I)) in closed form; both are reported
    (`reconstruction_loss`, `kl_loss`). `call` decodes the mean, so
    inference is deterministic; `sample(n)` decodes draws from the prior;
    `negative_log_likelihood` estimates -log p(x) in nats by importance
    sampling (the IWAE bound).

    Args:
        architecture: `"dense"` (784 -> hidden_dims -> latent, as the lecture
            series' VAE notebook, 784-400-20) or `"conv"` (strided
            convolutions with `filters`, then a dense layer to the latent).
        latent_dim: size of z.
        hidden_dims: hidden layer sizes of the dense encoder (mirrored by the
            decoder).
        filters: filters per strided convolution of the conv architecture.
        beta: weight of the KL term (1 for the ELBO).
        binarize: train on dynamically binarised inputs (each pixel drawn
            as Bernoulli(pixel) afresh every batch), for likelihood work.
        seed: seed of eps, of binarisation and of `sample`.
        image_shape: shape of one input image.
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> model = aekeras.models.VAE(latent_dim=2)
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train"), epochs=30)
    >>> digits = model.sample(16)
    """

    loss_term_names = ("reconstruction_loss", "kl_loss")

    def __init__(
        self,
        architecture="dense",
        latent_dim=20,
        hidden_dims=(400,),
        filters=(32, 64),
        beta=1.0,
        binarize=False,
        seed=None,
        image_shape=(28, 28, 1),
        **kwargs,
    ):
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if not (isinstance(latent_dim, int) and latent_dim > 0):
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        hidden_dims = tuple(int(d) for d in hidden_dims)
        filters = tuple(int(f) for f in filters)
        image_shape = tuple(int(d) for d in image_shape)
        if architecture == "dense":
            encoder_layers = [keras.layers.Flatten(name="flatten")] + [
                keras.layers.Dense(d, activation="relu", name=f"hidden_{i}")
                for i, d in enumerate(hidden_dims)
            ]
            decoder_layers = [
                keras.layers.Dense(d, activation="relu", name=f"hidden_{i}")
                for i, d in reversed(list(enumerate(hidden_dims)))
            ] + [
                keras.layers.Dense(math.prod(image_shape), activation="sigmoid", name="output"),
                keras.layers.Reshape(image_shape, name="reshape"),
            ]
        else:
            scale = 2 ** len(filters)
            if image_shape[0] % scale or image_shape[1] % scale:
                raise ValueError(
                    f"image_shape {image_shape} must be divisible by {scale} for "
                    f"{len(filters)} strided convolutions"
                )
            code_shape = (image_shape[0] // scale, image_shape[1] // scale, filters[-1])
            encoder_layers = [
                keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="relu", name=f"conv_{i}")
                for i, f in enumerate(filters)
            ] + [keras.layers.Flatten(name="flatten")]
            decoder_layers = [
                keras.layers.Dense(math.prod(code_shape), activation="relu", name="unlatent"),
                keras.layers.Reshape(code_shape, name="reshape"),
            ] + [
                keras.layers.Conv2DTranspose(
                    f, 3, strides=2, padding="same", activation="relu", name=f"deconv_{i}"
                )
                for i, f in reversed(list(enumerate(filters)))
            ] + [
                keras.layers.Conv2D(
                    image_shape[-1], 3, padding="same", activation="sigmoid", name="output"
                )
            ]
        # One dense head gives both z_mean and z_log_var, split in half.
        encoder_layers.append(keras.layers.Dense(2 * latent_dim, name="z_mean_and_log_var"))
        super().__init__(
            encoder=keras.Sequential(encoder_layers, name="encoder"),
            decoder=keras.Sequential(decoder_layers, name="decoder"),
            reconstruction_loss="binary_crossentropy",
            value_range=(0.0, 1.0),
            image_shape=image_shape,
            **kwargs,
        )
        self.architecture = architecture
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.filters = filters
        self.beta = float(beta)
        self.binarize = binarize
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.build((None, *self.image_shape))

    def code_shape(self, input_shape):
        return (input_shape[0], self.latent_dim)

    def encode_distribution(self, inputs, training=False):
        """Returns `(z_mean, z_log_var)` of q(z|x)."""
        outputs = self.encoder(inputs, training=training)
        return outputs[:, : self.latent_dim], outputs[:, self.latent_dim :]

    def encode(self, inputs, training=False):
        """The mean of q(z|x): the deterministic code."""
        return self.encode_distribution(inputs, training=training)[0]

    def reparameterize(self, z_mean, z_log_var):
        """z = mean + exp(0.5 log_var) * eps, eps ~ N(0, I) from the seed generator."""
        eps = draw_for_global_batch("normal", ops.shape(z_mean), self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def sample(self, num_samples):
        """Decodes `num_samples` draws from the prior N(0, I)."""
        z = keras.random.normal((num_samples, self.latent_dim), seed=self.seed_generator)
        return self.decode(z)

    def binarize_inputs(self, inputs):
        """Each pixel drawn afresh as Bernoulli(pixel)."""
        uniform = draw_for_global_batch("uniform", ops.shape(inputs), self.seed_generator)
        return ops.cast(uniform < inputs, inputs.dtype)

    def compute_loss_terms(self, inputs, targets, training=False):
        if self.binarize:
            binary = self.binarize_inputs(inputs)
            targets = binary if targets is inputs else targets
            inputs = binary
        z_mean, z_log_var = self.encode_distribution(inputs, training=training)
        reconstructions = self.decode(self.reparameterize(z_mean, z_log_var), training=training)
        self.reconstruction_error(targets, reconstructions)  # checks the shapes
        return {
            "reconstruction_loss": losses.binary_crossentropy(targets, reconstructions, "sum"),
            "kl_loss": self.beta * losses.kl_divergence_standard_normal(z_mean, z_log_var),
        }

    def negative_log_likelihood(self, inputs, num_samples=50):
        """Importance-sampled estimate of -log p(x) in nats, per example.

        log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x):
        the IWAE bound, tighter as k grows; k=1 gives the ELBO. `inputs`
        should be binary (the Bernoulli likelihood of grey levels is not a
        probability of the image).
        """
        inputs = ops.convert_to_tensor(inputs, "float32")
        z_mean, z_log_var = self.encode_distribution(inputs)
        batch = ops.shape(inputs)[0]
        eps = keras.random.normal((num_samples, batch, self.latent_dim), seed=self.seed_generator)
        z = z_mean + ops.exp(0.5 * z_log_var) * eps
        probs = self.decode(ops.reshape(z, (-1, self.latent_dim)))
        repeated = ops.tile(inputs[None], (num_samples,) + (1,) * len(inputs.shape))
        log_px_z = -losses.binary_crossentropy(
            ops.reshape(repeated, (-1, *self.image_shape)), probs, "sum"
        )
        log_px_z = ops.reshape(log_px_z, (num_samples, batch))
        log_pz = losses.gaussian_log_density(z, 0.0, 0.0)
        log_qz = losses.gaussian_log_density(z, z_mean, z_log_var)
        log_weights = log_px_z + log_pz - log_qz
        log_px = tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_samples)
        return -log_px

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "architecture": self.architecture,
                "latent_dim": self.latent_dim,
                "hidden_dims": self.hidden_dims,
                "filters": self.filters,
                "beta": self.beta,
                "binarize": self.binarize,
                "seed": self.seed,
                "image_shape": self.image_shape,
            }
        )
        return config
