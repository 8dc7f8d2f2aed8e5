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
        warmup_num_samples: k for the first `warmup_epochs` epochs of `fit`
            (a cheaper bound to start from: at k = 50 an epoch costs about
            ten times one at k = 5); `None`: `num_samples` from the start.
        warmup_epochs: how many epochs train with `warmup_num_samples`
            (counted from the first epoch, so a resumed `fit` with
            `initial_epoch` switches at the same point). Evaluation always
            uses `num_samples`.
        **kwargs: the VAE's arguments (`beta` must stay 1: the bound has no
            separate KL term to weight).

    Example:

    >>> model = aekeras.models.IWAE(num_samples=5, binarize=True)
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train"), epochs=30)
    >>> nll = model.negative_log_likelihood(binary_test_images, 1000)
    """

    loss_term_names = ("iwae_loss",)
    config_fields = (*VAE.config_fields, "num_samples", "warmup_num_samples", "warmup_epochs")

    def __init__(self, num_samples=5, warmup_num_samples=None, warmup_epochs=0, **kwargs):
        if kwargs.get("beta", 1.0) != 1.0:
            raise ValueError(
                f"IWAE's bound has no separate KL term to weight: beta must be 1, got {kwargs['beta']!r}"
            )
        self.num_samples = blocks.check_size("num_samples", num_samples)
        self.warmup_num_samples = blocks.check_size("warmup_num_samples", warmup_num_samples, allow_none=True)
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(
                f"warmup_epochs must be a whole number of epochs, 0 or more, got {warmup_epochs!r}"
            )
        if warmup_epochs and warmup_num_samples is None:
            raise ValueError(f"warmup_epochs={warmup_epochs} needs warmup_num_samples, the k to warm up with")
        if warmup_num_samples is not None and not warmup_epochs:
            raise ValueError(
                f"warmup_num_samples={warmup_num_samples} needs warmup_epochs, how many epochs to warm up"
            )
        self.warmup_epochs = warmup_epochs
        # The k that training steps trace with; set per epoch by
        # `ImportanceSamplesWarmup`, not part of the config.
        self.training_num_samples = self.num_samples
        super().__init__(**kwargs)

    def default_callbacks(self):
        callbacks = super().default_callbacks()
        if self.warmup_epochs:
            callbacks.append(ImportanceSamplesWarmup())
        return callbacks

    def fit(self, *args, **kwargs):
        """`VAE.fit`, after which training steps use `num_samples` however it ended.

        A fit stopped during the warm-up (a Ctrl-C, an error, the last epoch
        of a short fit) would leave a step traced with the warm-up's k, and
        `train_on_batch` or the next fit's first steps would reuse it.
        """
        try:
            return super().fit(*args, **kwargs)
        finally:
            self._train_with(self.num_samples)

    def _train_with(self, num_samples):
        """Sets the k of training steps, tracing the step again when it changes (its shapes depend on k)."""
        if num_samples != self.training_num_samples:
            self.training_num_samples = num_samples
            self.make_train_function(force=True)

    def compute_loss_terms(self, inputs, targets, training=False):
        inputs, targets = self.binarized_pair(inputs, targets)
        k = self.training_num_samples if training else self.num_samples
        log_weights, logits = self.log_importance_weights(
            inputs, targets, k, training=training, for_training=True
        )
        bound = tf.reduce_logsumexp(log_weights, axis=0) - math.log(k)
        # The first draw's mean image stands for the reconstruction (metrics, pictures).
        reconstructions = self.mean_of(logits[: tf.shape(inputs)[0]])
        self.reconstruction_error(targets, reconstructions)  # checks the shapes
        return {"iwae_loss": -bound}, reconstructions


class ImportanceSamplesWarmup(keras.callbacks.Callback):
    """Trains an `IWAE` with its `warmup_num_samples` for its first `warmup_epochs` epochs.

    The model's `default_callbacks` include one when it has a warm-up. The number of samples
    fixes the shapes of the training step, so the step is traced again when
    it changes (once, at the switch); `IWAE.fit` restores the model's own k
    however the fit ends.
    """

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        model._train_with(model.warmup_num_samples if epoch < model.warmup_epochs else model.num_samples)
