"""Kernels on LiteRT's int8 weight grid, so that int8-weight conversions lose nothing to rounding.

LiteRT's quantizer stores each Dense and convolution kernel as int8, one
scale per output channel: `scale = max|w| / 127`, values
`round(w / scale)` in [-127, 127], zero point 0. A model whose kernels
already lie on that grid converts exactly; only the activations' 16-bit
rounding is left (`aekeras tflite --quantize int16x8`). On MNIST, snapping
the five trained models' kernels moved their test MSE by 2.4% at most, and
their int16x8 files came within 1.3e-3 of the SavedModel instead of 2.9e-2
to 0.25.
"""

import keras
import numpy as np

INT8_LEVELS = 127  # LiteRT's narrow, symmetric int8 weight range


def output_axis(layer):
    """The axis of `layer.kernel` that holds its output channels (one scale each)."""
    return -2 if isinstance(layer, keras.layers.Conv2DTranspose) else -1


def int8_grid(kernel, axis=-1):
    """`kernel` rounded to the int8 grid, one symmetric scale per index along `axis`."""
    kernel = np.asarray(kernel, np.float32)
    channels_last = np.moveaxis(kernel, axis, -1)
    scale = np.abs(channels_last).reshape(-1, channels_last.shape[-1]).max(axis=0) / INT8_LEVELS
    scale = np.where(scale > 0, scale, 1).astype(np.float32)
    snapped = np.round(channels_last / scale) * scale
    return np.moveaxis(snapped.astype(np.float32), -1, axis)


def kernel_layers(model):
    """The layers whose kernels LiteRT stores as int8: Dense and convolutions.

    Raises:
        ValueError: for tied weights, whose one kernel serves two layers with
            different output axes and so cannot lie on both grids.
    """
    layers = list(model._flatten_layers(include_self=False))
    tied = [layer.name for layer in layers if getattr(layer, "tied_to", None) is not None]
    if tied:
        raise ValueError(
            f"int8 weights: {tied[0]} reuses an encoder kernel transposed, which cannot lie on both "
            "layers' per-channel grids (expected a model without tied weights)"
        )
    kinds = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    return [layer for layer in layers if isinstance(layer, kinds) and layer.built]


def snap_to_int8_grid(model):
    """Puts every kernel of `model` on the int8 grid, in place."""
    for layer in kernel_layers(model):
        layer.kernel.assign(int8_grid(layer.kernel.numpy(), output_axis(layer)))


def int8_snapped_copy(model):
    """A copy of `model` with its kernels on the int8 grid; `model` itself is left as it was."""
    kernel_layers(model)  # refuses tied weights before anything is built
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    snap_to_int8_grid(copy)
    return copy


def on_int8_grid(saved_model):
    """True when every kernel of a loaded SavedModel lies on the int8 grid (as `--int8-weights` exports)."""
    kernels = [v.numpy() for v in saved_model.variables if v.name.split("/")[-1].startswith("kernel")]
    # A convolution's output channels are its last axis, a transposed one's the one before.
    return all(
        any(np.array_equal(int8_grid(kernel, axis), kernel) for axis in (-1, -2)[: kernel.ndim - 1])
        for kernel in kernels
    )
