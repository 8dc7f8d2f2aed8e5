"""The base class of every aekeras autoencoder."""

import keras
import tensorflow as tf

from aekeras import losses
from aekeras.data import VALUE_RANGES


def draw_for_global_batch(distribution, shape, seed_generator):
    """Draws `"uniform"` or `"normal"` values of `shape` for this replica.

    Under a `tf.distribute` strategy every replica draws values for the whole
    global batch from the same seed state and keeps its own contiguous slice,
    so each example gets the same noise however the batch is split: two
    replicas train exactly as one device does.
    """
    draw = keras.random.normal if distribution == "normal" else keras.random.uniform
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return draw(shape, seed=seed_generator)
    local = shape[0]
    values = draw((local * replicas, *shape[1:]), seed=seed_generator)
    start = context.replica_id_in_sync_group * local
    return values[start : start + local]


@keras.saving.register_keras_serializable(package="aekeras")
class BaseAutoencoder(keras.Model):
    """What every aekeras autoencoder shares; subclass it for a new variant.

    The base class owns `encode`, `decode` and `call`; the loss trackers;
    and a `train_step`/`test_step` pair that averages per-example losses over
    the global batch, so training under a `tf.distribute` strategy matches
    training on one device. A variant overrides only `compute_loss_terms`,
    which returns its named per-example loss terms (their sum is the loss),
    and lists their names in `loss_term_names`. Each subclass returns its own
    constructor arguments from `get_config`.

    `fit` takes batches of inputs alone (the inputs are the targets) or
    `(inputs, targets)` pairs, as for denoising or super-resolution. Compile
    with an optimizer only: the loss is part of the model's configuration.

    Args:
        encoder: a Keras layer or model mapping inputs to codes.
        decoder: a Keras layer or model mapping codes to reconstructions.
        reconstruction_loss: `"mse"` or `"binary_crossentropy"` (which needs
            outputs and targets in [0, 1]).
        value_range: `(low, high)`, the pixel scale the model reads and
            writes: `(0, 1)` or `(-1, 1)`. Exports rescale to it.
        image_shape: shape of one input example. Concrete subclasses end
            their `__init__` with `self.build((None, *image_shape))`, so the
            weights exist from construction.
        **kwargs: passed to `keras.Model` (for example `name`).

    Example:

    >>> class L1Autoencoder(BaseAutoencoder):
    ...     def compute_loss_terms(self, inputs, targets, training=False):
    ...         errors = keras.ops.abs(targets - self(inputs, training=training))
    ...         return {"reconstruction_loss": keras.ops.mean(errors, axis=(1, 2, 3))}
    """

    loss_term_names = ("reconstruction_loss",)

    def __init__(
        self,
        encoder,
        decoder,
        reconstruction_loss="mse",
        value_range=(0.0, 1.0),
        image_shape=(28, 28, 1),
        **kwargs,
    ):
        super().__init__(**kwargs)
        value_range = tuple(float(v) for v in value_range)
        if value_range not in VALUE_RANGES:
            raise ValueError(
                f"value_range {value_range} is not supported (expected one of "
                f"{VALUE_RANGES})"
            )
        if reconstruction_loss not in losses.RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"unknown reconstruction_loss {reconstruction_loss!r} (expected "
                f"one of {sorted(losses.RECONSTRUCTION_LOSSES)})"
            )
        if reconstruction_loss == "binary_crossentropy" and value_range != (0.0, 1.0):
            raise ValueError(
                "reconstruction_loss 'binary_crossentropy' needs value_range "
                f"(0, 1), got {value_range}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.reconstruction_loss = reconstruction_loss
        self.value_range = value_range
        self.image_shape = tuple(int(d) for d in image_shape)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.term_trackers = [
            keras.metrics.Mean(name=name) for name in self.loss_term_names
        ]

    def code_shape(self, input_shape):
        """The shape of the codes `encode` gives for inputs of `input_shape`."""
        return self.encoder.compute_output_shape(input_shape)

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder.build(self.code_shape(input_shape))

    def encode(self, inputs, training=False):
        """Maps inputs to codes."""
        return self.encoder(inputs, training=training)

    def decode(self, codes, training=False):
        """Maps codes to reconstructions."""
        return self.decoder(codes, training=training)

    def call(self, inputs, training=False):
        # Checked here, since a Flatten in the encoder would take any size.
        got = tuple(inputs.shape[1:])
        if len(got) != len(self.image_shape) or any(
            d is not None and d != e for d, e in zip(got, self.image_shape)
        ):
            expected = ", ".join(str(d) for d in ("batch", *self.image_shape))
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape ({expected}), got "
                f"shape {tuple(inputs.shape)}"
            )
        return self.decode(self.encode(inputs, training=training), training=training)

    def reconstruction_error(self, targets, reconstructions):
        """The configured reconstruction loss, one value per example."""
        expected, got = targets.shape[1:], reconstructions.shape[1:]
        if len(expected) != len(got) or any(
            a is not None and b is not None and a != b for a, b in zip(expected, got)
        ):
            raise ValueError(
                f"targets of shape {tuple(targets.shape)} do not match "
                f"reconstructions of shape {tuple(reconstructions.shape)}; fit "
                "takes batches of inputs alone or (inputs, targets) pairs, not "
                "(images, labels)"
            )
        return losses.reconstruction_loss(
            self.reconstruction_loss, targets, reconstructions
        )

    def compute_loss_terms(self, inputs, targets, training=False):
        """Returns the named per-example loss terms (each of shape `[batch]`).

        Variants override this; the keys must be `loss_term_names`.
        """
        reconstructions = self(inputs, training=training)
        return {"reconstruction_loss": self.reconstruction_error(targets, reconstructions)}

    @property
    def metrics(self):
        return [self.loss_tracker, *self.term_trackers]

    def _unpack(self, data):
        inputs, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} does not take sample weights; pass "
                "batches of inputs or (inputs, targets) pairs"
            )
        return inputs, inputs if targets is None else targets

    def _total_loss(self, terms):
        """Per-example total: the terms plus any layer penalties (`self.losses`)."""
        total = tf.add_n(list(terms.values()))
        if self.losses:
            total += tf.add_n(self.losses)
        return total

    def _update_trackers(self, terms, total):
        self.loss_tracker.update_state(total)
        for tracker in self.term_trackers:
            tracker.update_state(terms[tracker.name])
        return {t.name: t.result() for t in (self.loss_tracker, *self.term_trackers)}

    def train_step(self, data):
        inputs, targets = self._unpack(data)
        with tf.GradientTape() as tape:
            terms = self.compute_loss_terms(inputs, targets, training=True)
            total = self._total_loss(terms)
            # Divide by the global batch size, not the replica's: gradients
            # are summed over replicas, so the result matches one device.
            loss = tf.nn.compute_average_loss(total)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._update_trackers(terms, total)

    def test_step(self, data):
        inputs, targets = self._unpack(data)
        terms = self.compute_loss_terms(inputs, targets, training=False)
        return self._update_trackers(terms, self._total_loss(terms))
