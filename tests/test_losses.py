import numpy as np
import pytest

from aekeras import losses


def test_squared_error_per_example_mean_and_sum():
    targets = np.zeros((2, 2, 2, 1), np.float32)
    reconstructions = np.stack([np.full((2, 2, 1), 1.0), np.arange(4.0).reshape(2, 2, 1)]).astype(np.float32)
    np.testing.assert_allclose(losses.squared_error(targets, reconstructions), [1.0, 14 / 4])
    np.testing.assert_allclose(losses.squared_error(targets, reconstructions, "sum"), [4.0, 14.0])


def test_mean_over_batch_equals_torch_mse_loss():
    rng = np.random.default_rng(0)
    targets, reconstructions = rng.uniform(-1, 1, (2, 8, 784)).astype(np.float32)
    # nn.MSELoss() averages over every element; equal batches make the means agree.
    assert float(np.mean(losses.squared_error(targets, reconstructions))) == pytest.approx(
        float(np.mean((targets - reconstructions) ** 2)), rel=1e-6
    )


def test_binary_crossentropy_matches_its_formula():
    rng = np.random.default_rng(1)
    targets = rng.uniform(0, 1, (3, 4, 4, 1)).astype(np.float32)
    probs = rng.uniform(0.05, 0.95, (3, 4, 4, 1)).astype(np.float32)
    expected = -(targets * np.log(probs) + (1 - targets) * np.log(1 - probs)).reshape(3, -1)
    np.testing.assert_allclose(losses.binary_crossentropy(targets, probs), expected.mean(-1), rtol=1e-5)
    np.testing.assert_allclose(losses.binary_crossentropy(targets, probs, "sum"), expected.sum(-1), rtol=1e-5)


def test_binary_crossentropy_stays_finite_at_saturated_outputs():
    targets = np.array([[0.0, 1.0]], np.float32)
    values = losses.binary_crossentropy(targets, np.array([[1.0, 0.0]], np.float32))
    assert np.all(np.isfinite(values)) and float(values[0]) > 10


def test_binary_crossentropy_of_a_sigmoid_reads_its_logits_as_keras_does():
    import keras
    import tensorflow as tf

    # Saturated logits: the clipped probabilities would cap these pixels' loss near 16.1.
    logits = np.array([[-40.0, 40.0, 0.5, -3.0]], np.float32)
    targets = np.array([[1.0, 0.0, 0.25, 1.0]], np.float32)
    expected = keras.ops.mean(keras.ops.binary_crossentropy(targets, logits, from_logits=True), axis=-1)
    eager = losses.binary_crossentropy(targets, keras.activations.sigmoid(logits))  # `_keras_logits`
    traced = tf.function(lambda x: losses.binary_crossentropy(targets, tf.sigmoid(x)))(
        logits
    )  # the op's input
    for values in (eager, traced):
        np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert float(expected[0]) > 20

    # As the Bernoulli likelihood: no boolean mask kept for the gradient, as
    # TensorFlow's logistic loss keeps one (which a `tf.cond` around a
    # sharded step could not type).
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(losses.binary_crossentropy(targets, tf.sigmoid(x)))
        return tape.gradient(loss, x)

    graph = tf.function(gradient).get_concrete_function(tf.TensorSpec([1, 4])).graph
    assert not [op.type for op in graph.get_operations() if op.outputs and op.outputs[0].dtype == tf.bool]


def test_bernoulli_log_likelihood_from_logits_and_its_gradient_are_exact_where_clipping_is_not():
    import tensorflow as tf

    targets = np.array([[0.0, 1.0, 1.0, 0.3]], np.float32)
    logits = tf.constant([[-2.0, 1.5, -30.0, 40.0]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        per_pixel = losses.bernoulli_log_likelihood(targets, logits, "none")
        total = losses.bernoulli_log_likelihood(targets, logits)
    x, z = targets.astype(np.float64), logits.numpy().astype(np.float64)
    expected = x * z - np.logaddexp(0.0, z)
    np.testing.assert_allclose(per_pixel, expected, rtol=1e-6)
    assert float(total[0]) == pytest.approx(expected.sum(), rel=1e-6)
    # A pixel the decoder is sure of, wrongly: -30 nats, and a full gradient
    # to correct it; probabilities clipped at 1e-7 would give -16.1 and none.
    assert float(per_pixel[0, 2]) == pytest.approx(-30.0, abs=1e-6)
    np.testing.assert_allclose(tape.gradient(total, logits), x - 1 / (1 + np.exp(-z)), atol=1e-6)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown reconstruction loss 'l1'"):
        losses.reconstruction_loss("l1", np.zeros((1, 1)), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        losses.squared_error(np.zeros((1, 1)), np.zeros((1, 1)), "max")


def test_kl_divergence_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(3)
    mean = rng.normal(size=(4, 3)).astype(np.float32)
    log_var = rng.normal(scale=0.5, size=(4, 3)).astype(np.float32)
    z = (mean + np.exp(0.5 * log_var) * rng.normal(size=(200000, 4, 3))).astype(np.float32)
    log_q = np.asarray(losses.gaussian_log_density(z, mean, log_var))
    log_p = np.asarray(losses.gaussian_log_density(z, 0.0, 0.0))
    monte_carlo = np.mean(log_q - log_p, axis=0)
    np.testing.assert_allclose(
        losses.kl_divergence_standard_normal(mean, log_var), monte_carlo, rtol=0.02, atol=0.01
    )
    assert np.allclose(losses.kl_divergence_standard_normal(np.zeros((1, 5)), np.zeros((1, 5))), 0)


def test_gaussian_log_density_of_the_standard_normal():
    z = np.array([[0.0, 1.0]], np.float32)
    expected = np.sum(-0.5 * np.log(2 * np.pi) - 0.5 * z**2)
    assert float(losses.gaussian_log_density(z, 0.0, 0.0)[0]) == pytest.approx(expected, rel=1e-6)


def test_dense_sigmoid_penalty_closed_form_on_a_tiny_case():
    # One input, two codes: J = diag(h(1-h)) W^T, so ||J||^2 = sum_j (h_j(1-h_j))^2 W_j^2.
    codes = np.array([[0.5, 0.1]], np.float32)
    kernel = np.array([[2.0, 3.0]], np.float32)
    expected = (0.25**2) * 4 + (0.09**2) * 9
    assert float(losses.dense_sigmoid_contractive_penalty(codes, kernel)[0]) == pytest.approx(expected)
    jacobian = np.array([[[0.25 * 2.0], [0.09 * 3.0]]], np.float32)
    assert float(losses.squared_frobenius_norm(jacobian)[0]) == pytest.approx(expected)


def test_continuous_bernoulli_is_a_density_with_the_stated_mean():
    # Integrate p(x | lambda) and x p(x | lambda) over [0, 1] numerically.
    x = (np.arange(200000, dtype=np.float64) + 0.5) / 200000
    for lam in (0.02, 0.3, 0.4999, 0.5, 0.5004, 0.9):
        logit_batch = np.full((1, 1), np.log(lam / (1 - lam)), np.float32)
        log_c = float(losses.continuous_bernoulli_log_normalizer(logit_batch)[0, 0])
        density = np.exp(x * np.log(lam) + (1 - x) * np.log(1 - lam) + log_c)
        assert np.mean(density) == pytest.approx(1.0, abs=1e-4), lam
        mean = float(losses.continuous_bernoulli_mean(logit_batch)[0, 0])
        assert mean == pytest.approx(np.mean(x * density), abs=1e-4), lam
    # Per example, it is the Bernoulli log-likelihood plus the normalisers.
    targets = np.array([[0.2, 0.9]], np.float32)
    probs = np.array([[0.3, 0.8]], np.float32)
    expected = np.sum(targets * np.log(probs) + (1 - targets) * np.log(1 - probs)) + sum(
        float(losses.continuous_bernoulli_log_normalizer(np.array([[np.log(p / (1 - p))]], np.float32))[0, 0])
        for p in (0.3, 0.8)
    )
    logits = np.log(probs / (1 - probs))
    assert float(losses.continuous_bernoulli_log_likelihood(targets, logits)[0]) == pytest.approx(
        expected, rel=1e-5
    )


def test_continuous_bernoulli_keeps_float32_precision_where_lambda_nears_0_or_1():
    # Through 1 - 2 sigmoid(l) in float32, log C was 1.8e-3 off at |l| of 10 to 14, a background pixel's logits.
    logits = np.concatenate([np.linspace(-16, 16, 641), [-1e-3, 0.0, 2e-3, 9e-3, 1.1e-2]])
    exact = np.ones_like(logits) * np.log(2.0)
    away = np.abs(logits) > 0
    exact[away] = np.log(logits[away] / np.tanh(logits[away] / 2))  # float64
    got = np.asarray(losses.continuous_bernoulli_log_normalizer(logits.astype(np.float32)[None]))[0]
    np.testing.assert_allclose(got, exact, rtol=2e-7, atol=1e-7)
    probs = 1 / (1 + np.exp(-logits))
    mean = np.full_like(logits, 0.5)
    mean[away] = probs[away] / np.tanh(logits[away] / 2) - 1 / logits[away]
    got = np.asarray(losses.continuous_bernoulli_mean(logits.astype(np.float32)[None]))[0]
    np.testing.assert_allclose(got, mean, rtol=1e-6, atol=1e-7)


def test_gaussian_log_likelihood_matches_scipy():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    targets, means = rng.uniform(size=(3, 4, 4, 1)), rng.uniform(size=(3, 4, 4, 1))
    got = np.asarray(
        losses.gaussian_log_likelihood(targets.astype(np.float32), means.astype(np.float32), np.log(0.2))
    )
    expected = norm.logpdf(targets, means, 0.2).reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    per_pixel = np.asarray(losses.gaussian_log_likelihood(targets, means, np.log(0.2), reduction="none"))
    np.testing.assert_allclose(per_pixel, norm.logpdf(targets, means, 0.2), rtol=1e-5)


def test_vector_quantization_moves_the_codebook_and_the_encoder_by_their_own_terms():
    import tensorflow as tf

    encoded = tf.constant([[[1.0, 2.0]], [[0.0, -1.0]]])
    quantized = tf.constant([[[0.5, 2.5]], [[1.0, -1.0]]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([encoded, quantized])
        values = losses.vector_quantization(encoded, quantized, commitment_cost=0.25)
    difference = (encoded - quantized).numpy()
    np.testing.assert_allclose(values, 1.25 * np.mean(difference**2, axis=(1, 2)), rtol=1e-6)
    # The codebook follows ||sg(z_e) - z_q||^2 alone, the encoder beta ||z_e - sg(z_q)||^2 alone.
    np.testing.assert_allclose(tape.gradient(values, quantized), -difference, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(values, encoded), 0.25 * difference, rtol=1e-6)
