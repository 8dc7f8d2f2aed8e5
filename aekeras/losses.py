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


def kl_divergence_standard_normal(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) per example, in closed form."""
    return 0.5 * ops.sum(
        ops.exp(z_log_var) + ops.square(z_mean) - 1.0 - z_log_var, axis=-1
    )


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, diag(exp(log_var))), summed over the last axis."""
    log_two_pi = 1.8378770664093453
    return -0.5 * ops.sum(
        log_two_pi + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1
    )


def squared_frobenius_norm(jacobians):
    """Per-example squared Frobenius norm of a batch of Jacobians."""
    return _per_example(ops.square(jacobians), "sum")


def dense_sigmoid_contractive_penalty(codes, kernel):
    """||J_h(x)||_F^2 of h = sigmoid(x W + b), in closed form, per example.

    J_ji = h_j (1 - h_j) W_ij, so the squared norm is
    sum_j (h_j (1 - h_j))^2 * sum_i W_ij^2. The contractive model computes the
    Jacobian by automatic differentiation for any encoder; this closed form
    is what the tests check it against.
    """
    return ops.sum(
        ops.square(codes * (1.0 - codes)) * ops.sum(ops.square(kernel), axis=0),
        axis=-1,
    )
