"""Denoising: train an autoencoder to undo a corruption of its inputs."""

import keras
from keras import ops

from aekeras import noise as noises
from aekeras.models.shards import draw_for_global_batch
from aekeras.models.wrapped import WrappedAutoencoder

_VALID_LEVELS = {
    "dropout": ("in [0, 1)", lambda v: 0 <= v < 1),
    "gaussian": (">= 0", lambda v: v >= 0),
    "salt_and_pepper": ("in [0, 1]", lambda v: 0 <= v <= 1),
}


@keras.saving.register_keras_serializable(package="aekeras")
class DenoisingAutoencoder(WrappedAutoencoder):
    """Trains a wrapped autoencoder on corrupted inputs against clean targets.

    Fresh noise is drawn for every batch inside the training step, from the
    model's `keras.random.SeedGenerator`, never one fixed noisy copy of the
    data. `evaluate` and validation report the loss on corrupted inputs and,
    as `clean_reconstruction_loss`, the error on clean inputs. Inference
    (`call`, `predict`) reconstructs what it is given, without noise.

    The lecture's setting: `DenoisingAutoencoder(DenseAutoencoder(
    latent_dim=500), noise="dropout", noise_level=0.5)` on [-1, 1] images, a
    dropout mask as `torch.nn.Dropout(p=0.5)` makes it (values 0 or 2).

    Args:
        autoencoder: the aekeras autoencoder to train, dense or
            convolutional; its encoder and decoder are trained in place.
        noise: `"dropout"`, `"gaussian"` or `"salt_and_pepper"`.
        noise_level: the drop probability, the Gaussian standard deviation,
            or the fraction of salt-and-pepper pixels.
        scale_kept: for dropout, scale kept pixels by 1 / (1 - p) as
            `torch.nn.Dropout` does.
        seed: seed of the noise.
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> model = aekeras.models.DenoisingAutoencoder(
    ...     aekeras.models.DenseAutoencoder(latent_dim=500), noise="dropout")
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train", value_range=(-1, 1)))
    """

    evaluation_term_names = ("clean_reconstruction_loss",)
    config_fields = ("noise", "noise_level", "scale_kept", "seed")

    def __init__(self, autoencoder, noise="dropout", noise_level=0.5, scale_kept=True, seed=None, **kwargs):
        if noise not in noises.NOISE_KINDS:
            raise ValueError(f"unknown noise {noise!r} (expected one of {noises.NOISE_KINDS})")
        expected, is_valid = _VALID_LEVELS[noise]
        if not is_valid(noise_level):
            raise ValueError(f"noise_level for {noise} must be {expected}, got {noise_level!r}")
        super().__init__(autoencoder, **kwargs)
        self.noise = noise
        self.noise_level = float(noise_level)
        self.scale_kept = scale_kept
        self.seed = seed
        self.start_random_streams(seed)
        self.build((None, *self.image_shape))

    def corrupt(self, inputs, seed=None):
        """Returns `inputs` with freshly drawn noise.

        With an integer `seed`, the same noise on every call, drawn without
        touching the generator training draws from (for pictures).
        """
        random = draw_for_global_batch(
            noises.random_distribution(self.noise),
            ops.shape(inputs),
            self.noise_seeds if seed is None else seed,
        )
        return noises.corrupt(inputs, self.noise, self.noise_level, self.value_range, random, self.scale_kept)

    def picture_rows(self, images, labels=None):
        """The images, their corruption (the same every epoch) and the model's repair of it, on [0, 1]."""
        spec = self.image_spec
        # A fixed seed: training's own noise generator is left as it was.
        corrupted = self.corrupt(spec.to_model_scale(images), seed=0)
        # Called on the model's scale, not through `reconstruct`: corrupted
        # values leave [0, 1] (a dropout mask at rate 0.7 scales kept ones
        # by 3.3), which `reconstruct` refuses as a user's input.
        repaired = keras.ops.convert_to_numpy(self(corrupted))
        return [
            images,
            spec.to_unit_scale(keras.ops.convert_to_numpy(corrupted)),
            spec.to_unit_scale(repaired),
        ]

    def compute_loss_terms(self, inputs, targets, training=False):
        reconstructions = self(self.corrupt(inputs), training=training)
        return {"reconstruction_loss": self.reconstruction_error(targets, reconstructions)}, reconstructions

    def evaluation_terms(self, inputs, targets):
        return {"clean_reconstruction_loss": self.reconstruction_error(targets, self(inputs))}
