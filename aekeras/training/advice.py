"""Notes for settings that suit MNIST but not the user's images."""

import math

import keras

# The lectures' Adam rate and the input it was tuned on: MNIST's 784 pixels.
LECTURE_LEARNING_RATE = 1e-3
LECTURE_FAN_IN = 28 * 28


def dense_fan_in(model):
    """The input size of the model's first dense layer when it reads the pixels directly, else None.

    None too where the encoder is a single layer (a plugin's) rather than
    a model of layers: advice must never stop a run.
    """
    layers = getattr(getattr(model, "encoder", None), "layers", None) or []
    first = next((layer for layer in layers if layer.weights), None)
    return first.kernel.shape[0] if isinstance(first, keras.layers.Dense) else None


def learning_rate_note(model, learning_rate):
    """A note when Adam's lecture rate meets a dense layer much wider than MNIST's, else None.

    Adam moves every weight by about the learning rate per step, so a
    dense unit's input moves by up to rate x fan-in x pixel: 15.7 times
    MNIST's on 64x64x3 photographs, whose pixels are also mostly far from 0.
    There the default VAE's first epoch blew its KL up to 287,000 nats and
    its reconstructions collapsed to the mean image (tests/test_users_data_quality.py);
    a rate scaled by sqrt(784 / fan-in) trained it.
    """
    fan_in = dense_fan_in(model)
    if fan_in is None or learning_rate < LECTURE_LEARNING_RATE or fan_in <= 4 * LECTURE_FAN_IN:
        return None
    suggested = LECTURE_LEARNING_RATE * math.sqrt(LECTURE_FAN_IN / fan_in)
    return (
        f"note: the first dense layer reads {fan_in} values ({fan_in // LECTURE_FAN_IN}x MNIST's pixels), and "
        f"Adam at {learning_rate:g} can blow such a model up in its first steps (reconstructions collapse to "
        f"the mean image); try --learning-rate {suggested:.1g}, or a convolutional architecture"
    )
