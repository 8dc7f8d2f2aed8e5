"""Loss formulas as pure functions of tensors.

Every function returns one value per example (shape `[batch]`), so that a
training step can average over the global batch under a distribution
strategy and report each term on its own.
"""

from keras import ops


def _per_example(values, reduction):
    """Reduces every axis but the first with `reduction` ("mean", "sum", or "none")."""
    if reduction == "none":
        return values
    flat = ops.reshape(values, (ops.shape(values)[0], -1))
    if reduction == "mean":
        return ops.mean(flat, axis=-1)
    if reduction == "sum":
        return ops.sum(flat, axis=-1)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def squared_error(targets, reconstructions, reduction="mean"):
    """Per-example squared error: the mean (MSE) or sum over all pixels."""
    # A product, not ops.square: TFLite fuses square(a - b) into
    # SQUARED_DIFFERENCE, which LiteRT cannot run on 16-bit activations.
    difference = targets - reconstructions
    return _per_example(difference * difference, reduction)


def binary_crossentropy(targets, reconstructions, reduction="mean"):
    """Per-example binary cross-entropy of probabilities in [0, 1].

    `reconstructions` are probabilities. Where they are a sigmoid's output
    whose logits are known (as Keras knows them), the loss is taken from
    the logits, exactly, as Keras does; else the probabilities are clipped
    away from 0 and 1 by Keras's epsilon so the logarithms stay finite.
    """
    logits = _sigmoid_logits(reconstructions)
    if logits is not None:
        return -bernoulli_log_likelihood(targets, logits, reduction)
    values = ops.binary_crossentropy(targets, reconstructions, from_logits=False)
    return _per_example(values, reduction)


def _sigmoid_logits(probabilities):
    """The logits a sigmoid made `probabilities` from, where known; else None.

    Keras's sigmoid keeps them on its output (`_keras_logits`), and a traced
    graph shows them as the `Sigmoid` op's input: the two places Keras's own
    cross-entropy looks. Taken from there, the loss is the Bernoulli
    likelihood's, whose gradient is one pass over the pixels, where
    TensorFlow's `sigmoid_cross_entropy_with_logits` takes several and
    keeps a boolean mask for its gradient.
    """
    logits = getattr(probabilities, "_keras_logits", None)
    if logits is not None:
        return logits
    op = getattr(probabilities, "op", None)
    if getattr(op, "type", None) == "Sigmoid":
        return op.inputs[0]
    return None


RECONSTRUCTION_LOSSES = {
    "mse": squared_error,
    "binary_crossentropy": binary_crossentropy,
}


def reconstruction_loss(name, targets, reconstructions, reduction="mean"):
    """Per-example reconstruction loss by name (a key of RECONSTRUCTION_LOSSES)."""
    if name not in RECONSTRUCTION_LOSSES:
        raise ValueError(
            f"unknown reconstruction loss {name!r} (expected one of {sorted(RECONSTRUCTION_LOSSES)})"
        )
    return RECONSTRUCTION_LOSSES[name](targets, reconstructions, reduction)


def bernoulli_log_likelihood(targets, logits, reduction="sum"):
    """log p(x | logits) of a Bernoulli decoder, summed over pixels per example.

    x * logits - softplus(logits), from the logits: exact for every logit,
    where the cross-entropy of probabilities clipped to [eps, 1 - eps] caps
    a pixel's term and gives it no gradient past the clip. The gradient,
    x - sigmoid(logits), is written out: one pass over the pixels instead of
    the several autodiff makes of softplus and the product.
    """
    targets = ops.convert_to_tensor(targets, "float32")

    @ops.custom_gradient
    def log_probabilities(logits):
        def gradient(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return upstream * (targets - ops.sigmoid(logits))

        return targets * logits - ops.softplus(logits), gradient

    return _per_example(log_probabilities(logits), reduction)


def continuous_bernoulli_log_normalizer(logits):
    """log C(lambda) of the continuous Bernoulli (Loaiza-Ganem and Cunningham, 2019), lambda = sigmoid(logits).

    C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) is l / tanh(l / 2)
    in the logits l: computed so, without 1 - 2 sigmoid(l), which loses
    float32's precision as lambda nears 0 or 1 (1.8e-3 a pixel at |l| of 10
    to 14). At l = 0 it is 2; near it, log 2 + l^2 / 12 - 7 l^4 / 1440.
    """
    near_zero = ops.abs(logits) < 1e-2
    safe = ops.where(near_zero, ops.ones_like(logits), logits)
    exact = ops.log(safe / ops.tanh(0.5 * safe))
    squared = ops.square(logits)
    taylor = 0.6931471805599453 + squared / 12.0 - 7.0 * ops.square(squared) / 1440.0
    return ops.where(near_zero, taylor, exact)


def continuous_bernoulli_log_likelihood(targets, logits, reduction="sum"):
    """log p(x | lambda) of a continuous Bernoulli decoder, lambda = sigmoid(logits), summed per example.

    The Bernoulli log-likelihood plus the log-normaliser that makes it a
    density on [0, 1], so it is a likelihood of grey levels too.
    """
    return bernoulli_log_likelihood(targets, logits, reduction) + _per_example(
        continuous_bernoulli_log_normalizer(logits), reduction
    )


def continuous_bernoulli_mean(logits):
    """The mean of a continuous Bernoulli, which is not its parameter lambda = sigmoid(logits).

    lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)), which is
    sigmoid(l) / tanh(l / 2) - 1 / l in the logits l (precise as lambda
    nears 0 or 1, as `continuous_bernoulli_log_normalizer` is). Below
    |l| = 1/2 the two terms cancel, and its series takes over:
    1/2 + l / 12 - l^3 / 720 + l^5 / 30240.
    """
    near_zero = ops.abs(logits) < 0.5
    safe = ops.where(near_zero, ops.ones_like(logits), logits)
    exact = ops.sigmoid(safe) / ops.tanh(0.5 * safe) - 1.0 / safe
    cubed = logits * ops.square(logits)
    series = 0.5 + logits / 12.0 - cubed / 720.0 + cubed * ops.square(logits) / 30240.0
    return ops.where(near_zero, series, exact)


def gaussian_log_likelihood(targets, means, log_scale, reduction="sum"):
    """log N(x; mean, scale^2 I) summed over pixels per example; `log_scale` is log sigma."""
    log_two_pi = 1.8378770664093453
    values = -0.5 * (ops.square((targets - means) * ops.exp(-log_scale)) + 2.0 * log_scale + log_two_pi)
    return _per_example(values, reduction)


def kl_divergence_standard_normal(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)) per example, in closed form."""
    return 0.5 * ops.sum(ops.exp(z_log_var) + ops.square(z_mean) - 1.0 - z_log_var, axis=-1)


def gaussian_log_density(z, mean, log_var):
    """log N(z; mean, diag(exp(log_var))), summed over the last axis."""
    log_two_pi = 1.8378770664093453
    return -0.5 * ops.sum(log_two_pi + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1)


def vector_quantization(encoded, quantized, commitment_cost):
    """The VQ-VAE's codebook and commitment terms, averaged over the code's values, per example.

    ||sg(z_e) - z_q||^2 moves the codebook to the encoder's outputs;
    `commitment_cost` * ||z_e - sg(z_q)||^2 keeps the encoder near its codes.
    Averaged as the reconstruction term is over pixels: summed over a 7x7x16
    code against a mean over pixels, the term weighed 784 times as much,
    and the codebook collapsed to a few vectors in three epochs.
    """
    codebook = ops.square(ops.stop_gradient(encoded) - quantized)
    commitment = ops.square(encoded - ops.stop_gradient(quantized))
    return _per_example(codebook + commitment_cost * commitment, "mean")


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
