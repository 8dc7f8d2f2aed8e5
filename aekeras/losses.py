"""Loss formulas as pure functions of tensors.

Every function returns one value per example (shape `[batch]`), so that a
training step can average over the global batch under a distribution
strategy and report each term on its own.
"""

from keras import ops


def _per_example(values, reduction):
    """Reduces every axis but the first with `reduction` ("mean" or "sum")."""
    flat = ops.reshape(values, (ops.shape(values)[0], -1))
    if reduction == "mean":
        return ops.mean(flat, axis=-1)
    if reduction == "sum":
        return ops.sum(flat, axis=-1)
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def squared_error(targets, reconstructions, reduction="mean"):
    """Per-example squared error: the mean (MSE) or sum over all pixels."""
    return _per_example(ops.square(targets - reconstructions), reduction)


def binary_crossentropy(targets, reconstructions, reduction="mean"):
    """Per-example binary cross-entropy of probabilities in [0, 1].

    `reconstructions` are probabilities (a sigmoid output); they are clipped
    away from 0 and 1 by Keras's epsilon so the logarithms stay finite.
    """
    values = ops.binary_crossentropy(targets, reconstructions, from_logits=False)
    return _per_example(values, reduction)


RECONSTRUCTION_LOSSES = {
    "mse": squared_error,
    "binary_crossentropy": binary_crossentropy,
}


def reconstruction_loss(name, targets, reconstructions, reduction="mean"):
    """Per-example reconstruction loss by name (a key of RECONSTRUCTION_LOSSES)."""
    if name not in RECONSTRUCTION_LOSSES:
        raise ValueError(
            f"unknown reconstruction loss {name!r} (expected one of "
            f"{sorted(RECONSTRUCTION_LOSSES)})"
        )
    return RECONSTRUCTION_LOSSES[name](targets, reconstructions, reduction)
