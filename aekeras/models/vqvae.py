"""The vector-quantised variational autoencoder (van den Oord, Vinyals and Kavukcuoglu, 2017)."""

import keras
import tensorflow as tf
from keras import ops

from aekeras import losses
from aekeras.models import blocks
from aekeras.models.base import BaseAutoencoder, resolve_image_spec


@keras.saving.register_keras_serializable(package="aekeras")
class VectorQuantizer(keras.layers.Layer):
    """A codebook of `num_embeddings` vectors; maps each position's vector to its nearest.

    `call` gives the nearest codebook vectors and their indices; the
    straight-through estimator and the losses are the model's.
    """

    def __init__(self, num_embeddings, embedding_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim

    def build(self, input_shape):
        # Uniform in +-1/K: small against the encoder's first outputs, so
        # every vector starts near the others and can be pulled to the data.
        bound = 1.0 / self.num_embeddings
        self.codebook = self.add_weight(
            shape=(self.num_embeddings, self.embedding_dim),
            initializer=keras.initializers.RandomUniform(-bound, bound),
            name="codebook",
        )

    def indices_of(self, vectors):
        """The index of the nearest codebook vector for each vector, `[..., embedding_dim]` -> `[...]`."""
        flat = ops.reshape(vectors, (-1, self.embedding_dim))
        distances = (
            ops.sum(ops.square(flat), axis=1, keepdims=True)
            - 2 * ops.matmul(flat, ops.transpose(self.codebook))
            + ops.sum(ops.square(self.codebook), axis=1)[None, :]
        )
        # tf.argmin, not keras.ops.argmin: Keras's adds bitwise ops that TFLite lacks.
        indices = tf.argmin(distances, axis=1, output_type=tf.int32)
        return ops.reshape(indices, ops.shape(vectors)[:-1])

    def lookup(self, indices):
        """The codebook vectors of `indices`, `[...]` -> `[..., embedding_dim]`."""
        return ops.take(self.codebook, indices, axis=0)

    def call(self, vectors):
        indices = self.indices_of(vectors)
        return self.lookup(indices), indices

    def compute_output_shape(self, input_shape):
        return input_shape, input_shape[:-1]

    def get_config(self):
        return {
            **super().get_config(),
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
        }


@keras.saving.register_keras_serializable(package="aekeras")
class VQVAE(BaseAutoencoder):
    """A convolutional autoencoder whose spatial code is quantised to a learned codebook.

    The encoder (strided convolutions with `filters`, then a 1x1 convolution
    to `embedding_dim`) gives a vector per code position; each is replaced
    by the nearest of `num_embeddings` codebook vectors, and the decoder
    mirrors the encoder. Training minimises the reconstruction error plus
    `vq_loss` (`aekeras.losses.vector_quantization`: the codebook term and
    `commitment_cost` times the commitment term, per example averaged over
    the code's values, as the reconstruction is over pixels); gradients
    pass the quantisation straight through (z_e + sg(z_q - z_e)).
    `codebook_usage`, the fraction of the codebook a batch uses, is
    reported with the losses.

    `encode` gives the quantised code z_q (what `decode` takes); the
    indices are `encode_indices`, and `decode_indices` maps them back. The
    export adds both: `encode` returns `latent` and `indices`, and
    `decode_indices` takes `indices`.

    Args:
        filters: filters per strided convolution, from the input down.
        embedding_dim: length of each codebook vector.
        num_embeddings: codebook size K.
        commitment_cost: beta, the weight of the commitment term (0.25 in
            the paper).
        reconstruction_loss: `"mse"` or `"binary_crossentropy"`.
        image_shape: `(height, width, channels)`; by default that of
            `image_spec`, else MNIST's.
        image_spec: the `aekeras.data.ImageSpec` of the inputs, on [0, 1].
        **kwargs: passed to `keras.Model`.

    Example:

    >>> model = aekeras.models.VQVAE(num_embeddings=64)
    >>> model.compile(optimizer="adam")
    >>> model.fit(aekeras.data.load("mnist", "train"), epochs=10)
    >>> indices = model.encode_indices(images)  # [n, 7, 7] int32
    """

    loss_term_names = ("reconstruction_loss", "vq_loss")
    monitor_term_names = ("codebook_usage",)
    # Not in shards by default, although two trained its step 1.22x as fast
    # as one (median of 9 rounds alternating in one process, MNIST, batches
    # of 256; 1.06-1.40x): `codebook_usage` counts the codes of the batch it
    # sees, so each shard would count only its own, and the log would read
    # lower the more cores the machine has.
    trains_in_shards = False
    config_fields = ("filters", "embedding_dim", "num_embeddings", "commitment_cost", "reconstruction_loss")

    def __init__(
        self,
        filters=(32, 64),
        embedding_dim=16,
        num_embeddings=64,
        commitment_cost=0.25,
        reconstruction_loss="mse",
        image_shape=None,
        image_spec=None,
        **kwargs,
    ):
        spec = resolve_image_spec(image_spec, image_shape, None, (0.0, 1.0))
        if spec.value_range != (0.0, 1.0):
            raise ValueError(f"a VQVAE models images on [0, 1], got value_range {spec.value_range}")
        blocks.check_image_shape(type(self).__name__, spec.shape)
        filters = blocks.check_sizes("filters", filters)
        embedding_dim = blocks.check_size("embedding_dim", embedding_dim)
        num_embeddings = blocks.check_size("num_embeddings", num_embeddings)
        if not commitment_cost >= 0:
            raise ValueError(f"commitment_cost must be >= 0, got {commitment_cost!r}")
        encoder = keras.Sequential(
            [
                *blocks.conv_encoder_layers(filters, "strided", "relu"),
                keras.layers.Conv2D(embedding_dim, 1, data_format=blocks.DATA_FORMAT, name="to_embedding"),
            ],
            name="encoder",
        )
        decoder = keras.Sequential(
            blocks.conv_decoder_layers(spec.shape, filters, "strided", "relu", "sigmoid"), name="decoder"
        )
        super().__init__(encoder, decoder, spec, reconstruction_loss, **kwargs)
        self.filters = filters
        self.embedding_dim = embedding_dim
        self.num_embeddings = num_embeddings
        self.commitment_cost = float(commitment_cost)
        self.quantizer = VectorQuantizer(num_embeddings, embedding_dim, name="quantizer")
        self.build((None, *self.image_shape))

    def build(self, input_shape):
        super().build(input_shape)
        self.quantizer.build(self.code_shape(input_shape))

    def code_shape(self, input_shape):
        return (
            input_shape[0],
            *blocks.conv_code_shape(input_shape[1:], self.filters)[:2],
            self.embedding_dim,
        )

    def encode_continuous(self, inputs, training=False):
        """z_e: the encoder's vectors before quantisation."""
        return self.encoder(self.checked_images(inputs), training=training)

    def encode(self, inputs, training=False):
        """z_q: each position's nearest codebook vector."""
        return self.quantizer(self.encode_continuous(inputs, training=training))[0]

    def encode_indices(self, inputs):
        """The codebook index of each code position, `[batch, h, w]` int32."""
        return self.quantizer.indices_of(self.encode_continuous(inputs))

    def decode_indices(self, indices):
        """Images (the model's scale) from codebook indices `[batch, h, w]`."""
        indices = self.checked(indices, tuple(self.code_shape((None, *self.image_shape))[1:3]), "indices")
        return self.decode(self.quantizer.lookup(indices))

    def compute_loss_terms(self, inputs, targets, training=False):
        z_e = self.encode_continuous(inputs, training=training)
        z_q, indices = self.quantizer(z_e)
        vq_loss = losses.vector_quantization(z_e, z_q, self.commitment_cost)
        straight_through = z_e + ops.stop_gradient(z_q - z_e)
        reconstructions = self.decode(straight_through, training=training)
        used = tf.size(tf.unique(tf.reshape(indices, [-1]))[0])
        usage = ops.cast(used, "float32") / self.num_embeddings
        return {
            "reconstruction_loss": self.reconstruction_error(targets, reconstructions),
            "vq_loss": vq_loss,
            "codebook_usage": ops.broadcast_to(usage, ops.shape(vq_loss)),
        }, reconstructions

    def encode_outputs(self, inputs):
        z_e = self.encode_continuous(inputs)
        z_q, indices = self.quantizer(z_e)
        return {"latent": z_q, "indices": indices}

    def input_value_counts(self):
        """The served `indices` take the codebook's `num_embeddings` values."""
        return {**super().input_value_counts(), "indices": self.num_embeddings}

    def serving_endpoints(self):
        positions = tuple(self.code_shape((None, *self.image_shape))[1:3])

        def decode_indices(indices):
            return {"images": self.image_spec.to_unit_scale(self.decode_indices(indices))}

        return {
            "decode_indices": (
                decode_indices,
                {"indices": tf.TensorSpec((None, *positions), tf.int32, name="indices")},
            )
        }
