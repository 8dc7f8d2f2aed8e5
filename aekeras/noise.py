"""Corruptions for denoising autoencoders, as pure functions.

Each function takes the random tensor it needs (uniform or standard normal,
the shape of the inputs) instead of drawing it, so it is deterministic and
testable; the model draws the randomness with its `SeedGenerator`.
"""

from keras import ops

from aekeras.choices import NOISE_KINDS  # noqa: F401 - re-exported


def dropout(inputs, uniform, rate, scale_kept=True):
    """Zeroes each value with probability `rate`, as `torch.nn.Dropout` does.

    With `scale_kept` the kept values are multiplied by 1 / (1 - rate), so the
    lecture's mask (`nn.Dropout(p=0.5)` applied to ones) takes the values 0
    and 2. Without it the mask is 0 or 1.
    """
    keep = ops.cast(uniform >= rate, inputs.dtype)
    if scale_kept:
        keep = keep / (1.0 - rate)
    return inputs * keep


def gaussian(inputs, normal, stddev, value_range):
    """Adds `stddev` * N(0, 1) noise, clipped back to `value_range`."""
    low, high = value_range
    return ops.clip(inputs + stddev * normal, low, high)


def salt_and_pepper(inputs, uniform, fraction, value_range):
    """Sets a `fraction` of the values to the range's ends, half each."""
    low, high = value_range
    pepper = uniform < fraction / 2
    salt = ops.logical_and(uniform >= fraction / 2, uniform < fraction)
    outputs = ops.where(pepper, ops.cast(low, inputs.dtype), inputs)
    return ops.where(salt, ops.cast(high, inputs.dtype), outputs)


def random_distribution(kind):
    """`"normal"` or `"uniform"`: what `corrupt` needs for a noise kind."""
    return "normal" if kind == "gaussian" else "uniform"


def corrupt(inputs, kind, level, value_range, random, scale_kept=True):
    """Applies the noise `kind` at `level` (drop rate, stddev or fraction).

    Args:
        inputs: the clean images, at `value_range`.
        kind: `"dropout"`, `"gaussian"` or `"salt_and_pepper"`.
        level: the drop probability, the Gaussian standard deviation, or
            the fraction of salt-and-pepper values.
        value_range: `(low, high)`, the scale of `inputs`; Gaussian noise
            is clipped to it, salt and pepper are its ends.
        random: a tensor of random values of `inputs`' shape, drawn from
            `random_distribution(kind)` (uniform on [0, 1) or standard
            normal), not a generator.
        scale_kept: for dropout, scale kept values by 1 / (1 - `level`).

    Returns:
        The corrupted inputs, a tensor of `inputs`' shape and dtype.

    Raises:
        ValueError: for an unknown `kind`.
    """
    if kind == "dropout":
        return dropout(inputs, random, level, scale_kept)
    if kind == "gaussian":
        return gaussian(inputs, random, level, value_range)
    if kind == "salt_and_pepper":
        return salt_and_pepper(inputs, random, level, value_range)
    raise ValueError(f"unknown noise {kind!r} (expected one of {NOISE_KINDS})")
