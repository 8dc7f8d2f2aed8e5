"""The importance-weighted autoencoder (Burda, Grosse and Salakhutdinov, 2016)."""

import math

import keras
import tensorflow as tf

from aekeras.models import blocks
from aekeras.models.vae import VAE


@keras.saving.register_keras_serializable(package="aekeras")
class IWAE(VAE):
    """A VAE trained on the k-sample importance-weighted bound.

    The objective is `-log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)`, z_i ~
    q(z|x) by reparameterisation: a tighter bound on -log p(x) than the
    ELBO for k > 1 (k = 1 is the ELBO, with a sampled KL term), whose
    gradient weights each draw by its normalised importance weight. The
    architecture, likelihoods, binarisation, signatures and the
    importance-sampled test NLL are the VAE's; only the loss differs, and
    it is reported as one term, `iwae_loss` (nats per example).

    Args:
        num_samples: k, importance samples per training example (Burda et
            al. use 5 and 50); the decoder runs k times per example.
        **kwargs: the VAE's arguments (`beta` must stay 1: the bound has no
            separate KL term to weight).

    Example:

    >>> model = aekeras.models.IWAE(num_samples=5, binarize=True)
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train"), epochs=30)
    >>> nll = model.negative_log_likelihood(binary_test_images, 1000)
    """

    loss_term_names = ("iwae_loss",)
    config_fields = (*VAE.config_fields, "num_samples")

    def __init__(self, num_samples=5, **kwargs):
        if kwargs.get("beta", 1.0) != 1.0:
            raise ValueError(
                f"IWAE's bound has no separate KL term to weight: beta must be 1, got {kwargs['beta']!r}"
            )
        self.num_samples = blocks.check_size("num_samples", num_samples)
        super().__init__(**kwargs)

    def compute_loss_terms(self, inputs, targets, training=False):
        inputs, targets = self.binarized_pair(inputs, targets)
        log_weights, parameters = self.log_importance_weights(
            inputs, targets, self.num_samples, training=training, for_training=True
        )
        bound = tf.reduce_logsumexp(log_weights, axis=0) - math.log(self.num_samples)
        # The first draw's mean image stands for the reconstruction (metrics, pictures).
        reconstructions = self.mean_of(parameters[: tf.shape(inputs)[0]])
        self.reconstruction_error(targets, reconstructions)  # checks the shapes
        return {"iwae_loss": -bound}, reconstructions
