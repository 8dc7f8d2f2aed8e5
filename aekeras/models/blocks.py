"""Encoder and decoder builders shared by every model: dense and convolutional stacks.

Each builder takes the image shape it serves, so the models work for any
HxWxC (and flat vectors for the dense ones) without knowing any size.
"""

import math
import numbers

import keras
import tensorflow as tf
from keras import ops
from tensorflow.python.ops import control_flow_util

from aekeras.choices import DOWNSAMPLING  # noqa: F401 - re-exported

# The layout of every image the models take: [batch, height, width,
# channels], as aekeras.data gives them. Each spatial layer and op says so
# itself rather than take Keras's `image_data_format`, which a user's
# keras.json may set to "channels_first": a conv model then failed to build
# or load, and a dense model loaded there flattened its pixels in another
# order than it trained on (wrong reconstructions, silently).
DATA_FORMAT = "channels_last"


def kernel_initializer(identifier):
    """Resolves an initializer; `"torch_linear"` is PyTorch's `nn.Linear` default.

    That default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), is what the lecture's
    model trains from; it reaches a lower MSE in 20 epochs than Glorot here.
    """
    if identifier == "torch_linear":
        return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")
    return keras.initializers.get(identifier)


class DenseTransposed(keras.layers.Layer):
    """A dense layer whose kernel is the transpose of another Dense's kernel.

    It owns only its bias. The tie is a live reference, not a copy, so both
    layers train one variable. The model that builds it rebuilds the tie
    from its own config, which is why this layer has no config of its own.
    """

    def __init__(self, tied_to, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.tied_to = tied_to
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.tied_to.kernel.shape[0],), initializer="zeros", name="bias")

    def call(self, inputs):
        outputs = ops.matmul(inputs, ops.transpose(self.tied_to.kernel))
        return self.activation(outputs + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.tied_to.kernel.shape[0])


@keras.saving.register_keras_serializable(package="aekeras")
class NearestUpsampling2D(keras.layers.Layer):
    """Nearest-neighbour 2x upsampling, as `UpSampling2D`, by concatenations and reshapes.

    `UpSampling2D`'s repeat loses static shapes (and then fails TFLite
    conversion), and an image resize has no gradient kernel that XLA
    compiles on CPU; copying each pixel beside itself (a concatenation on
    the channels, then on the rows, each followed by a reshape) does both,
    in four operations of constant shape: a TFLite file needs no shape
    arithmetic around it. The gradient, a sum over each 2x2 block, is taken
    as 4 x a 2x2 average pooling: the automatic one made the conv model's
    training step a quarter to a third slower on the CPU.
    """

    def call(self, inputs):
        return _upsample_nearest(inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, None if height is None else 2 * height, None if width is None else 2 * width, channels)


@keras.saving.register_keras_serializable(package="aekeras")
class OutputConv2D(keras.layers.Conv2D):
    """`Conv2D` to an image's channels that, to one channel, trains as a depthwise convolution.

    To one output channel, a convolution is a depthwise one (the same
    kernel: one filter per input channel) summed over the channels.
    oneDNN runs that form and its gradients in about half the time of
    its direct convolution to one channel: the conv model's training step
    on MNIST took 35 ms instead of 41. Only training takes it: inference,
    and so every export, runs the plain `Conv2D`, whose LiteRT and ONNX
    kernels quantise and convert as any convolution's. So does training
    compiled by XLA, whose depthwise gradients are slow on the CPU (160-166
    ms against 16-18 for the plain form, on a batch of 256 28x28x16 inputs).
    """

    def call(self, inputs, training=None):
        if not (training and self.trains_depthwise) or _compiling_with_xla():
            return super().call(inputs)
        outputs = ops.depthwise_conv(inputs, self.kernel, padding=self.padding, data_format=self.data_format)
        outputs = ops.sum(outputs, axis=-1, keepdims=True)
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    @property
    def trains_depthwise(self):
        """Whether training outside XLA takes the depthwise form: one filter, stride and dilation 1, channels last."""
        plain = self.strides == (1, 1) and self.dilation_rate == (1, 1) and self.groups == 1
        return self.filters == 1 and plain and self.data_format == "channels_last"


def load_with_older_weight_names(load):
    """`load()` (a Keras model or weights load); if it fails, once more reading the names files had before `OutputConv2D`.

    Keras files address a layer's weights by its class's name, and files
    written before `OutputConv2D` (aekeras 0.1.0 up to a2ff8cd) hold the
    output convolution's under the plain `Conv2D`'s: without this, a conv
    model, checkpoint or backup saved then would no longer load. If the
    second try fails too, the first error is raised.
    """
    try:
        return load()
    except (ValueError, KeyError) as error:
        first_error = error
    # The name is read while loading only; nothing saves meanwhile in the
    # loading thread, and other threads do not save models.
    OutputConv2D.__name__ = "Conv2D"
    try:
        return load()
    except (ValueError, KeyError):
        pass  # not an older file: the first error says what is wrong
    finally:
        OutputConv2D.__name__ = "OutputConv2D"
    raise first_error  # outside the handler, so its own causes stay its context


def _compiling_with_xla():
    """Whether the function being traced is compiled by XLA (`jit_compile=True`).

    TensorFlow traces such a function inside an XLA context; it has no
    public test for one, so this asks the one its own control flow asks.
    """
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


@ops.custom_gradient
def _upsample_nearest(inputs):
    # Static sizes where known, and -1 for the batch, so the shapes are constants.
    _, height, width, channels = ops.shape(inputs)
    pixel_pairs = ops.reshape(ops.concatenate([inputs, inputs], axis=-1), (-1, height, 2 * width, channels))
    row_pairs = ops.concatenate([pixel_pairs, pixel_pairs], axis=2)

    def block_sums(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream
        return 4.0 * ops.average_pool(
            upstream, pool_size=2, strides=2, padding="valid", data_format=DATA_FORMAT
        )

    return ops.reshape(row_pairs, (-1, 2 * height, 2 * width, channels)), block_sums


def flatten():
    """The `Flatten` layer that starts each encoder to a vector: pixels in the order `DATA_FORMAT` stores them."""
    return keras.layers.Flatten(data_format=DATA_FORMAT, name="flatten")


def dense_layers(sizes, activations, initializer="glorot_uniform", prefix="dense"):
    """Dense layers of `sizes` with one activation each."""
    return [
        keras.layers.Dense(
            size, activation=act, kernel_initializer=kernel_initializer(initializer), name=f"{prefix}_{i}"
        )
        for i, (size, act) in enumerate(zip(sizes, activations, strict=True))
    ]


def dense_encoder(hidden_dims, code_size, hidden_activation, code_activation, initializer):
    """Flatten, then Dense layers through `hidden_dims` to `code_size`."""
    sizes = (*hidden_dims, code_size)
    activations = (*[hidden_activation] * len(hidden_dims), code_activation)
    return keras.Sequential(
        [flatten(), *dense_layers(sizes, activations, initializer)],
        name="encoder",
    )


def dense_decoder(image_shape, hidden_dims, hidden_activation, output_activation, initializer, tied_to=None):
    """Dense layers mirroring `hidden_dims` back to `image_shape`, then a reshape.

    With `tied_to` (the encoder's Dense layers), each layer's kernel is the
    transpose of the matching encoder kernel.
    """
    output_sizes = (math.prod(image_shape), *hidden_dims)
    layers = []
    for i in reversed(range(len(output_sizes))):
        activation = output_activation if i == 0 else hidden_activation
        if tied_to is not None:
            layers.append(DenseTransposed(tied_to[i], activation=activation, name=f"dense_{i}_t"))
        else:
            layers.append(
                keras.layers.Dense(
                    output_sizes[i],
                    activation=activation,
                    kernel_initializer=kernel_initializer(initializer),
                    name=f"dense_{i}_t",
                )
            )
    return keras.Sequential([*layers, keras.layers.Reshape(image_shape, name="reshape")], name="decoder")


def level_sizes(image_shape, levels):
    """Spatial sizes per level: each halving rounds up (28 -> 14 -> 7 -> 4)."""
    sizes = [tuple(image_shape[:2])]
    for _ in range(levels):
        sizes.append(tuple(math.ceil(d / 2) for d in sizes[-1]))
    return sizes


def conv_encoder_layers(filters, downsampling, activation):
    """3x3 convolutions, each halving the size (max pooling or stride 2)."""
    layers = []
    for level, f in enumerate(filters):
        if downsampling == "pool":
            layers += [
                keras.layers.Conv2D(
                    f, 3, padding="same", activation=activation, data_format=DATA_FORMAT, name=f"conv_{level}"
                ),
                keras.layers.MaxPooling2D(2, padding="same", data_format=DATA_FORMAT, name=f"pool_{level}"),
            ]
        else:
            layers.append(
                keras.layers.Conv2D(
                    f,
                    3,
                    strides=2,
                    padding="same",
                    activation=activation,
                    data_format=DATA_FORMAT,
                    name=f"conv_{level}",
                )
            )
    return layers


def conv_decoder_layers(image_shape, filters, downsampling, activation, output_activation):
    """The mirror of `conv_encoder_layers`, cropping where the encoder rounded up.

    Ends with a 3x3 convolution to the image's channels, so the output has
    exactly `image_shape` whatever the sizes.
    """
    sizes = level_sizes(image_shape, len(filters))
    layers = []
    for level in reversed(range(len(filters))):
        if downsampling == "pool":
            layers += [
                keras.layers.Conv2D(
                    filters[level],
                    3,
                    padding="same",
                    activation=activation,
                    data_format=DATA_FORMAT,
                    name=f"deconv_{level}",
                ),
                NearestUpsampling2D(name=f"upsample_{level}"),
            ]
        else:
            layers.append(
                keras.layers.Conv2DTranspose(
                    filters[level],
                    3,
                    strides=2,
                    padding="same",
                    activation=activation,
                    data_format=DATA_FORMAT,
                    name=f"deconv_{level}",
                )
            )
        excess = [2 * s - t for s, t in zip(sizes[level + 1], sizes[level], strict=True)]
        if any(excess):
            layers.append(
                keras.layers.Cropping2D(
                    ((0, excess[0]), (0, excess[1])), data_format=DATA_FORMAT, name=f"crop_{level}"
                )
            )
    layers.append(
        OutputConv2D(
            image_shape[-1],
            3,
            padding="same",
            activation=output_activation,
            data_format=DATA_FORMAT,
            name="output",
        )
    )
    return layers


def conv_code_shape(image_shape, filters):
    """The spatial code of `conv_encoder_layers`: `(h, w, filters[-1])`."""
    return (*level_sizes(image_shape, len(filters))[-1], filters[-1])


def check_sizes(name, sizes, allow_empty=False):
    """Positive integers as a tuple, or ValueError naming `name`."""
    sizes = tuple(sizes)
    if (not sizes and not allow_empty) or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes
    ):
        raise ValueError(f"{name} must be positive integers, got {sizes!r}")
    return tuple(int(s) for s in sizes)


def check_size(name, size, allow_none=False):
    """A positive integer (or None where allowed), or ValueError naming `name`."""
    if size is None and allow_none:
        return None
    if not (isinstance(size, numbers.Integral) and not isinstance(size, bool) and size > 0):
        raise ValueError(f"{name} must be a positive integer, got {size!r}")
    return int(size)


def check_image_shape(model_name, image_shape):
    """Raises ValueError unless `image_shape` is (height, width, channels)."""
    if len(image_shape) != 3:
        raise ValueError(f"{model_name} needs (height, width, channels) images, got shape {image_shape}")
