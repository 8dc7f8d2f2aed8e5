"""The variational autoencoder."""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from aekeras import losses
from aekeras.choices import VAE_ARCHITECTURES as ARCHITECTURES
from aekeras.choices import VAE_LIKELIHOODS as LIKELIHOODS
from aekeras.models import blocks
from aekeras.models.base import BaseAutoencoder, resolve_image_spec
from aekeras.models.shards import draw_for_global_batch

# The Gaussian decoder's scale starts at a typical reconstruction error of
# [0, 1] images and is learned with the rest.
_INITIAL_SCALE = 0.1


def default_likelihood(image_spec, binarize):
    """The decoder likelihood `likelihood="auto"` picks.

    Bernoulli for binarised data and for single-channel images (the
    lesson's MNIST setting, mostly near 0 or 1); a Gaussian with a learned
    scale for colour images, whose grey levels a Bernoulli does not model.
    """
    if binarize or image_spec.channels in (None, 1):
        return "bernoulli"
    return "gaussian"


def _stacks(architecture, image_shape, latent_dim, hidden_dims, filters):
    """The encoder (to z_mean and z_log_var) and decoder (to the logits of the likelihood's parameter)."""
    if architecture == "dense":
        # The last Dense gives both z_mean and z_log_var, split in half.
        encoder = blocks.dense_encoder(hidden_dims, 2 * latent_dim, "relu", None, "glorot_uniform")
        decoder = blocks.dense_decoder(image_shape, hidden_dims, "relu", None, "glorot_uniform")
        return encoder, decoder
    blocks.check_image_shape("VAE(architecture='conv')", image_shape)
    code_shape = blocks.conv_code_shape(image_shape, filters)
    head = keras.layers.Dense(2 * latent_dim, name="z_mean_and_log_var")
    encoder = keras.Sequential(
        [*blocks.conv_encoder_layers(filters, "strided", "relu"), blocks.flatten(), head],
        name="encoder",
    )
    decoder = keras.Sequential(
        [
            keras.layers.Dense(math.prod(code_shape), activation="relu", name="unlatent"),
            keras.layers.Reshape(code_shape, name="reshape"),
            *blocks.conv_decoder_layers(image_shape, filters, "strided", "relu", None),
        ],
        name="decoder",
    )
    return encoder, decoder


@keras.saving.register_keras_serializable(package="aekeras")
class VAE(BaseAutoencoder):
    """A variational autoencoder for [0, 1] images of any shape.

    The encoder gives `z_mean` and `z_log_var`; training samples
    `z = z_mean + exp(0.5 * z_log_var) * eps` (eps from the model's seeded
    `SeedGenerator`) and minimises the negative ELBO: the reconstruction
    term, -log p(x | z) summed over pixels per example, plus `beta` times
    KL(q(z|x) || N(0, I)) in closed form; both are reported
    (`reconstruction_loss`, `kl_loss`). `call` and `decode` give the mean of
    p(x | z) at the mean code, so inference is deterministic; `sample(n)`
    decodes draws from the prior; `negative_log_likelihood` estimates
    -log p(x) in nats by importance sampling (the IWAE bound).

    The likelihood p(x | z): `"bernoulli"` (binary cross-entropy; a
    probability for binary images, the lesson's choice for MNIST),
    `"continuous_bernoulli"` (its normalised version, a density for grey
    levels on [0, 1]) or `"gaussian"` (mean from the decoder, one learned
    scale). `"auto"` picks Bernoulli for binarised or single-channel images
    and Gaussian for colour images (`default_likelihood`).

    Args:
        architecture: `"dense"` (input -> hidden_dims -> latent, as the
            lecture series' VAE notebook, 784-400-20) or `"conv"` (strided
            convolutions with `filters`, then a dense layer to the latent).
        latent_dim: size of z.
        hidden_dims: hidden layer sizes of the dense encoder (mirrored by the
            decoder).
        filters: filters per strided convolution of the conv architecture.
        beta: weight of the KL term (1 for the ELBO).
        binarize: train on dynamically binarised inputs (each pixel drawn
            as Bernoulli(pixel) afresh every batch), for likelihood work.
        likelihood: `"auto"`, `"bernoulli"`, `"continuous_bernoulli"` or
            `"gaussian"`.
        seed: seed of eps, of binarisation and of `sample`.
        image_shape: shape of one input image; by default that of
            `image_spec`, else MNIST's.
        image_spec: the `aekeras.data.ImageSpec` of the inputs; its value
            range must be (0, 1).
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> model = aekeras.models.VAE(latent_dim=2)
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train"), epochs=30)
    >>> digits = model.sample(16)
    """

    loss_term_names = ("reconstruction_loss", "kl_loss")
    has_prior = True
    config_fields = (
        "architecture",
        "latent_dim",
        "hidden_dims",
        "filters",
        "beta",
        "binarize",
        "likelihood",
        "seed",
    )

    def __init__(
        self,
        architecture="dense",
        latent_dim=20,
        hidden_dims=(400,),
        filters=(32, 64),
        beta=1.0,
        binarize=False,
        likelihood="auto",
        seed=None,
        image_shape=None,
        image_spec=None,
        **kwargs,
    ):
        spec = resolve_image_spec(image_spec, image_shape, None, (0.0, 1.0))
        if spec.value_range != (0.0, 1.0):
            raise ValueError(f"a VAE models images on [0, 1], got value_range {spec.value_range}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        latent_dim = blocks.check_size("latent_dim", latent_dim)
        hidden_dims = blocks.check_sizes("hidden_dims", hidden_dims, allow_empty=True)
        filters = blocks.check_sizes("filters", filters)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        if likelihood == "auto":
            likelihood = default_likelihood(spec, binarize)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be 'auto' or one of {LIKELIHOODS}, got {likelihood!r}")
        if binarize and likelihood != "bernoulli":
            raise ValueError(f"binarize needs the bernoulli likelihood, got {likelihood!r}")
        encoder, decoder = _stacks(architecture, spec.shape, latent_dim, hidden_dims, filters)
        super().__init__(encoder, decoder, spec, "binary_crossentropy", **kwargs)
        self.architecture = architecture
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.filters = filters
        self.beta = float(beta)
        self.binarize = binarize
        self.likelihood = likelihood
        self.seed = seed
        self.start_random_streams(seed)
        if likelihood == "gaussian":
            self.log_scale = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(np.log(_INITIAL_SCALE)), name="log_scale"
            )
        self.build((None, *self.image_shape))

    def code_shape(self, input_shape):
        return (input_shape[0], self.latent_dim)

    def stack_inputs(self, tensor, labels):
        """What the encoder or decoder takes for `tensor`: itself (the conditional VAE adds `labels`)."""
        return tensor

    def encode_distribution(self, inputs, training=False, labels=None):
        """Returns `(z_mean, z_log_var)` of q(z|x) (`labels`: of a conditional VAE, q(z|x, y))."""
        inputs = self.checked_images(inputs)
        outputs = self.encoder(self.stack_inputs(inputs, labels), training=training)
        return outputs[:, : self.latent_dim], outputs[:, self.latent_dim :]

    def encode(self, inputs, training=False, labels=None):
        """The mean of q(z|x): the deterministic code."""
        return self.encode_distribution(inputs, training=training, labels=labels)[0]

    def decode_parameters(self, codes, training=False, labels=None):
        """The decoder's output for codes: the logits of p(x | z)'s parameter.

        Their sigmoid is the Bernoulli's probabilities, the continuous
        Bernoulli's lambda or the Gaussian's means; the likelihoods read the
        logits themselves, so no probability is clipped.
        """
        codes = self.checked(codes, (self.latent_dim,), "codes")
        return self.decoder(self.stack_inputs(codes, labels), training=training)

    def mean_of(self, logits):
        """The mean image of p(x | z) given the decoder's logits."""
        if self.likelihood == "continuous_bernoulli":
            return losses.continuous_bernoulli_mean(logits)
        return ops.sigmoid(logits)

    def decode(self, codes, training=False, labels=None):
        """The mean image of p(x | z)."""
        return self.mean_of(self.decode_parameters(codes, training=training, labels=labels))

    def log_likelihood(self, targets, logits, reduction="sum"):
        """log p(x | z) per example (`reduction="none"`: per pixel), for the decoder's logits."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(targets, logits, reduction)
        if self.likelihood == "continuous_bernoulli":
            return losses.continuous_bernoulli_log_likelihood(targets, logits, reduction)
        return losses.gaussian_log_likelihood(targets, ops.sigmoid(logits), self.log_scale, reduction)

    # Two shards against one: the dense VAE's `fit` 1.3-1.5x as fast
    # (BENCHMARKS.md); the conv VAE's training step 1.07x and 1.10x, the
    # conditional conv VAE's 1.06x, the conv IWAE's 1.08x (medians of 9
    # rounds alternating in one process, MNIST, batches of 256).
    trains_in_shards = True

    def reparameterize(self, z_mean, z_log_var):
        """z = mean + exp(0.5 log_var) * eps, eps ~ N(0, I) from the seed generator."""
        eps = draw_for_global_batch("normal", ops.shape(z_mean), self.noise_seeds)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def sample(self, num_samples, *, seed=None):
        """Decodes `num_samples` draws from the prior N(0, I): mean images on [0, 1], as NumPy.

        NumPy on [0, 1], as `reconstruct` and `interpolate` give images.
        `seed`: as for `prior_draws`.
        """
        return self.image_spec.to_unit_scale(np.asarray(self.decode(self.prior_draws(num_samples, seed))))

    def prior_draws(self, num_samples, seed=None):
        """`num_samples` codes drawn from the prior N(0, I).

        Fresh draws from the model's seed generator; with an integer `seed`,
        the same draws on every call, the generator left as it was.
        """
        if isinstance(num_samples, bool) or not (
            isinstance(num_samples, (int, np.integer)) and num_samples > 0
        ):
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        seed = self.noise_seeds if seed is None else seed
        return keras.random.normal((int(num_samples), self.latent_dim), seed=seed)

    def binarize_inputs(self, inputs):
        """Each pixel drawn afresh as Bernoulli(pixel)."""
        uniform = draw_for_global_batch("uniform", ops.shape(inputs), self.noise_seeds)
        return ops.cast(uniform < inputs, inputs.dtype)

    def binarized_pair(self, inputs, targets):
        """`(inputs, targets)`, binarised afresh where the model trains on binary images."""
        if not self.binarize:
            return inputs, targets
        binary = self.binarize_inputs(inputs)
        return binary, binary if targets is inputs else targets

    def compute_loss_terms(self, inputs, targets, training=False, labels=None):
        inputs, targets = self.binarized_pair(inputs, targets)
        z_mean, z_log_var = self.encode_distribution(inputs, training=training, labels=labels)
        z = self.reparameterize(z_mean, z_log_var)
        logits = self.decode_parameters(z, training=training, labels=labels)
        reconstructions = self.mean_of(logits)
        self.reconstruction_error(targets, reconstructions)  # checks the shapes
        return {
            "reconstruction_loss": -self.log_likelihood(targets, logits),
            "kl_loss": self.beta * losses.kl_divergence_standard_normal(z_mean, z_log_var),
        }, reconstructions

    def log_importance_weights(
        self, inputs, targets, num_samples, training=False, for_training=False, labels=None
    ):
        """`(log_weights, logits)`: log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x).

        `log_weights` is `[num_samples, batch]`; `logits` the decoder's
        for every draw, `[num_samples * batch, ...]`, sample-major.
        `for_training` draws for the global batch (see
        `draw_for_global_batch`), so replicas train as one device does.
        `labels`: a conditional VAE's, one per example.
        """
        z_mean, z_log_var = self.encode_distribution(inputs, training=training, labels=labels)
        batch = ops.shape(inputs)[0]
        shape = (num_samples, batch, self.latent_dim)
        if for_training:
            eps = ops.transpose(
                draw_for_global_batch("normal", (batch, num_samples, self.latent_dim), self.noise_seeds),
                (1, 0, 2),
            )
        else:
            eps = keras.random.normal(shape, seed=self.noise_seeds)
        z = z_mean + ops.exp(0.5 * z_log_var) * eps
        repeated_labels = None if labels is None else ops.tile(labels, (num_samples,))
        z_flat = ops.reshape(z, (-1, self.latent_dim))
        logits = self.decode_parameters(z_flat, training=training, labels=repeated_labels)
        repeated = ops.tile(targets[None], (num_samples,) + (1,) * len(targets.shape))
        log_px_z = self.log_likelihood(ops.reshape(repeated, (-1, *self.image_shape)), logits)
        log_px_z = ops.reshape(log_px_z, (num_samples, batch))
        log_pz = losses.gaussian_log_density(z, 0.0, 0.0)
        log_qz = losses.gaussian_log_density(z, z_mean, z_log_var)
        return log_px_z + log_pz - log_qz, logits

    def negative_log_likelihood(self, inputs, num_samples=50, labels=None):
        """Importance-sampled estimate of -log p(x) in nats, per example.

        log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x):
        the IWAE bound, tighter as k grows; k=1 gives the ELBO. With the
        Bernoulli likelihood, `inputs` should be binary (the Bernoulli
        likelihood of grey levels is not a probability of the image). A
        conditional VAE's estimate is of -log p(x | y) for `labels` y.
        uint8 pixels are scaled first, as every entry point scales them.
        """
        if isinstance(num_samples, bool) or not (
            isinstance(num_samples, (int, np.integer)) and num_samples > 0
        ):
            raise ValueError(f"num_samples must be a positive integer (k=1 is the ELBO), got {num_samples!r}")
        inputs = ops.convert_to_tensor(self.checked_images(inputs), "float32")
        log_weights, _ = self.log_importance_weights(inputs, inputs, num_samples, labels=labels)
        return -(tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_samples))

    def encode_outputs(self, inputs, labels=None):
        z_mean, z_log_var = self.encode_distribution(inputs, labels=labels)
        return {"latent": z_mean, "z_mean": z_mean, "z_log_var": z_log_var}

    def serving_endpoints(self):
        def sample(num_samples):
            # TF's stateful op, not the model's SeedGenerator: every request
            # gets fresh draws, and TFLite has it as a builtin.
            z = tf.random.normal((num_samples, self.latent_dim))
            return {"images": self.decode(z)}

        return {"sample": (sample, {"num_samples": tf.TensorSpec((), tf.int32, name="num_samples")})}

    def evaluation_metrics(self, images, rng, nll_samples=50, labels=None):
        """`nll` (k = `nll_samples`) and `neg_elbo` (k = 1) on the images binarised once with `rng`.

        Binarised for the Bernoulli likelihood only; the others model the
        grey levels themselves. `labels`: a conditional VAE's.
        """
        if not nll_samples:
            return {}
        images = np.asarray(images)
        if self.likelihood == "bernoulli":
            images = (rng.uniform(size=images.shape) < images).astype(np.float32)
        return {
            "nll": self.negative_log_likelihood(images, nll_samples, labels).numpy(),
            "neg_elbo": self.negative_log_likelihood(images, 1, labels).numpy(),
        }
