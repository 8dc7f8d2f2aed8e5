"""The conditional variational autoencoder (Sohn, Lee and Yan, 2015)."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from aekeras import signatures
from aekeras.models import blocks
from aekeras.models.base import resolve_image_spec
from aekeras.models.vae import VAE


@keras.saving.register_keras_serializable(package="aekeras")
class ConditionalVAE(VAE):
    """A VAE whose encoder and decoder both read the class label: q(z|x, y), p(x|z, y).

    The label enters as a one-hot vector: beside the flattened image (dense
    encoder) or as `num_classes` constant planes beside the image's
    channels (conv encoder), and beside the code for the decoder. So
    `sample(n, labels)` draws images of the classes asked for, and the code
    is left to hold what the label does not say (a digit's style). The
    loss, likelihoods, binarisation and importance-sampled NLL (of x given
    y) are the VAE's.

    `fit` and `evaluate` take `(images, labels)` batches, as
    `aekeras.data.load(..., labels=True)` gives; `call` takes the pair too.
    `encode`, `decode`, `reconstruct`, `embed`, `sample` and
    `negative_log_likelihood` take `labels`, int class indices, one per
    example; every exported signature takes them as its `labels` input. A
    label outside `0 .. num_classes - 1` is an error (checked before the
    one-hot gather, on every device), not a blank condition.

    Args:
        num_classes: how many classes the labels have; by default the image
            spec's (`aekeras.data` specs of labelled sources carry it).
        **kwargs: the VAE's arguments.

    Example:

    >>> model = aekeras.models.ConditionalVAE(latent_dim=2)
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train", labels=True), epochs=30)
    >>> sevens = model.sample(8, labels=[7] * 8)
    """

    conditioned = True
    config_fields = (*VAE.config_fields, "num_classes")

    def __init__(self, num_classes=None, **kwargs):
        given = kwargs.get("image_spec")
        spec = resolve_image_spec(given, kwargs.pop("image_shape", None), None, (0.0, 1.0))
        if num_classes is None:
            num_classes = spec.num_classes
        if num_classes is None:
            raise ValueError(
                "ConditionalVAE needs data with class labels (MNIST, class folders, arrays with labels), "
                "or num_classes= where it is built in Python"
            )
        self.num_classes = blocks.check_size("num_classes", num_classes)
        if spec.num_classes != self.num_classes:
            if given is not None and spec.num_classes is not None:
                raise ValueError(f"num_classes {num_classes} differs from image_spec's {spec.num_classes}")
            # The spec a model is built for names its classes: these.
            spec = spec.replace(num_classes=self.num_classes, class_names=None)
        super().__init__(image_spec=spec, **{k: v for k, v in kwargs.items() if k != "image_spec"})

    def build(self, input_shape):
        # The encoder reads the image with its label, the decoder the code with it.
        if self.architecture == "conv":
            self.encoder.build((*input_shape[:-1], input_shape[-1] + self.num_classes))
        else:
            self.encoder.build((input_shape[0], int(np.prod(input_shape[1:])) + self.num_classes))
        self.decoder.build((input_shape[0], self.latent_dim + self.num_classes))

    def one_hot(self, labels):
        """One-hot rows of int `labels`; an index out of range, negative ones too, fails.

        Checked before the gather: on a CPU the gather itself fails, but on
        a GPU it gives zeros, a blank condition served without a word (XLA,
        which drops the check, clamps them to the first or last class).
        `tf.gather`, not `keras.ops.take`, which reads -1 as the last class.
        """
        labels = tf.cast(labels, tf.int32)
        low, high = tf.reduce_min(labels), tf.reduce_max(labels)
        takes = f"{type(self).__name__} takes labels from 0 to {self.num_classes - 1}; got labels from"
        in_range = ((low >= 0) & (high < self.num_classes)) | (tf.size(labels) == 0)
        if not tf.executing_eagerly():
            checks = [tf.debugging.Assert(in_range, [takes, low, "to", high])]
        elif in_range:
            checks = []
        else:  # one line, where the graph's check lists its values apart
            raise tf.errors.InvalidArgumentError(None, None, f"{takes} {int(low)} to {int(high)}")
        with tf.control_dependencies(checks):
            return tf.gather(tf.eye(self.num_classes), labels)

    def stack_inputs(self, tensor, labels):
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs labels, one class index per example")
        one_hot = self.one_hot(labels)
        if self.architecture == "conv" and len(tensor.shape) == 4:  # images: label planes beside the channels
            planes = ops.ones_like(tensor[..., :1]) * one_hot[:, None, None, :]
            return ops.concatenate([tensor, planes], axis=-1)
        flat = ops.reshape(tensor, (ops.shape(tensor)[0], -1))
        return ops.concatenate([flat, one_hot], axis=-1)

    def call(self, inputs, training=False):
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise TypeError(
                f"{type(self).__name__} takes (images, labels), labels one int class index per image; "
                f"got {type(inputs).__name__} {getattr(inputs, 'shape', '')}".rstrip()
            )
        images, labels = inputs
        return self.decode(
            self.encode(images, training=training, labels=labels), training=training, labels=labels
        )

    def _unpack(self, data):
        inputs, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        targets = None
        if isinstance(inputs, (tuple, list)) and len(inputs) == 2:
            # Keras's batches for a model of two inputs: ((images, labels),) or ((images, labels), targets).
            (inputs, labels), targets = inputs, labels
        if (
            labels is None
            or sample_weight is not None
            or len(labels.shape) != 1
            or not tf.as_dtype(labels.dtype).is_integer
        ):
            raise ValueError(
                f"{type(self).__name__} trains on (images, labels) batches, labels one int class "
                "index per image (aekeras.data.load(..., labels=True) gives them)"
            )
        inputs = self.scaled_images(inputs)
        return (inputs, labels), inputs if targets is None else self.scaled_images(targets)

    def predict_step(self, data):
        # The batches fit and evaluate take: Keras would read the labels as
        # targets and drop them.
        (inputs, labels), _ = self._unpack(data)
        return self((inputs, labels), training=False)

    def compute_loss_terms(self, inputs, targets, training=False):
        images, labels = inputs
        return super().compute_loss_terms(images, targets, training=training, labels=labels)

    def call_inputs(self, inputs, labels=None):
        return (inputs, labels)

    def sample(self, num_samples, labels=None, *, seed=None):
        """Decodes `num_samples` prior draws, of classes `labels` (default: 0, 1, ... in turn); NumPy on [0, 1].

        `seed`: as for `prior_draws`.
        """
        z = self.prior_draws(num_samples, seed)
        if labels is None:
            labels = np.arange(num_samples) % self.num_classes
        decoded = self.decode(z, **self.conditions(labels, num_samples))
        return self.image_spec.to_unit_scale(np.asarray(decoded))

    def serving_endpoints(self):
        def sample(labels):
            # As the VAE's: TF's stateful op, fresh draws every request; one image per label.
            z = tf.random.normal((tf.shape(labels)[0], self.latent_dim))
            return {"images": self.decode(z, labels=labels)}

        return {"sample": (sample, {signatures.LABEL_INPUT: signatures.label_spec()})}
