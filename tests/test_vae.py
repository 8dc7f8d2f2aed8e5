import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import AutoencoderTestCase, mnist

from aekeras import losses
from aekeras.models import VAE


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=64, batch_size=64))).numpy()


@pytest.fixture(scope="module")
def trained(images):
    keras.utils.set_random_seed(0)
    model = VAE(latent_dim=8, binarize=True, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(mnist("train", limit=4096, batch_size=128), epochs=3, verbose=0)
    return model


class TestVAE(AutoencoderTestCase):
    @pytest.mark.parametrize("architecture", ["dense", "conv"])
    def test_shapes_and_deterministic_inference(self, images, architecture):
        model = VAE(architecture=architecture, latent_dim=2, seed=0)
        z_mean, z_log_var = model.encode_distribution(images)
        assert z_mean.shape == z_log_var.shape == (64, 2)
        np.testing.assert_array_equal(model.encode(images), z_mean)
        np.testing.assert_array_equal(model(images), model(images))
        np.testing.assert_allclose(model(images), model.decode(z_mean), atol=1e-6)
        samples = model.sample(5)
        assert isinstance(samples, np.ndarray) and samples.shape == (5, 28, 28, 1)
        assert 0 <= samples.min() and samples.max() <= 1
        for bad in (-1, 0, 2.0):
            with pytest.raises(ValueError, match=f"num_samples must be a positive integer, got {bad}"):
                model.sample(bad)
        # A seed gives the same draws every call and leaves the model's own stream alone.
        state = keras.ops.convert_to_numpy(model.seed_generator.state)
        seeded = model.sample(3, seed=4)
        np.testing.assert_array_equal(seeded, model.sample(3, seed=4))
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.seed_generator.state), state)
        assert not np.array_equal(seeded, model.sample(3, seed=5))

    def test_lecture_series_dense_layout(self):
        model = VAE()
        assert [layer.units for layer in model.encoder.layers[1:]] == [400, 40]
        assert [layer.units for layer in model.decoder.layers[:-1]] == [400, 784]

    def test_loss_terms(self, images):
        model = VAE(latent_dim=4, beta=0.5, seed=0)
        terms, _ = model.compute_loss_terms(tf.constant(images), tf.constant(images))
        z_mean, z_log_var = model.encode_distribution(images)
        expected_kl = 0.5 * np.asarray(losses.kl_divergence_standard_normal(z_mean, z_log_var))
        np.testing.assert_allclose(terms["kl_loss"], expected_kl, rtol=1e-5)
        # Bernoulli reconstruction summed over the 784 pixels, per example.
        assert terms["reconstruction_loss"].shape == (64,)
        assert float(np.mean(terms["reconstruction_loss"])) > 100
        model.compile(optimizer="adam")
        assert set(model.get_metrics_result()) == {"loss", "reconstruction_loss", "kl_loss"}

    def test_reparameterisation_gradient_reaches_the_encoder(self, images):
        model = VAE(latent_dim=4, seed=0)
        with tf.GradientTape() as tape:
            z_mean, z_log_var = model.encode_distribution(images)
            z = model.reparameterize(z_mean, z_log_var)
            loss = tf.reduce_mean(tf.square(z))
        gradients = tape.gradient(loss, model.encoder.trainable_weights)
        assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)
        # Fresh eps every call.
        assert not np.array_equal(
            model.reparameterize(z_mean, z_log_var), model.reparameterize(z_mean, z_log_var)
        )

    def test_iwae_bound_is_below_the_negative_elbo(self, trained, images):
        binary = (np.random.default_rng(0).uniform(size=images.shape) < images).astype(np.float32)
        nll = np.mean([trained.negative_log_likelihood(binary, 50).numpy().mean() for _ in range(3)])
        neg_elbo = np.mean([trained.negative_log_likelihood(binary, 1).numpy().mean() for _ in range(20)])
        terms, _ = trained.compute_loss_terms(tf.constant(binary), tf.constant(binary))
        assert 0 < nll <= neg_elbo + 0.5
        # k=1 is the ELBO: it agrees with the training loss on the same images.
        assert neg_elbo == pytest.approx(
            float(np.mean(terms["reconstruction_loss"] + terms["kl_loss"])), rel=0.02
        )

    def test_nll_estimate_matches_the_exact_likelihood_of_a_one_dimensional_latent(self):
        # With one latent dimension, log p(x) = log integral p(x|z) p(z) dz is
        # a 1-D integral, computed here on a fine grid: the importance-
        # sampled estimate must agree (dropping its -log k would be off by 6.9).
        keras.utils.set_random_seed(0)  # the weights, whatever ran before in the process
        model = VAE(latent_dim=1, hidden_dims=(16,), image_shape=(2, 2, 1), seed=0)
        # q(z|x) of variance 2, wider than the prior and every posterior here: the importance
        # weights p(x|z) p(z) / q(z|x) are then bounded. An untrained encoder's q can be
        # narrower, and the weights' heavy tail put the estimate of 5 x 1,000 draws up to 0.08
        # nats off for 3 of 16 initial weights (0.03 with the weights of seed 0).
        head = model.encoder.layers[-1]
        kernel, bias = head.get_weights()
        kernel[:, 1:], bias[1:] = 0.0, np.log(2.0)
        head.set_weights([kernel, bias])
        x = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], np.float32).reshape(3, 2, 2, 1)
        z = np.linspace(-12, 12, 24001, dtype=np.float32)[:, None]
        probabilities = model.decode(z).numpy().astype(np.float64).reshape(len(z), 4)
        log_prior = -0.5 * (z[:, 0] ** 2 + np.log(2 * np.pi))
        exact = []
        for image in x.reshape(3, 4):
            log_px_z = np.sum(image * np.log(probabilities) + (1 - image) * np.log1p(-probabilities), axis=1)
            integrand = np.exp(log_px_z + log_prior)
            exact.append(-np.log(np.trapezoid(integrand, z[:, 0])))
        # 50 x 1,000 draws: at most 0.009 nats off over the initial weights of seeds 0 to 99.
        estimate = np.mean([model.negative_log_likelihood(x, 1000).numpy() for _ in range(50)], axis=0)
        np.testing.assert_allclose(estimate, exact, atol=0.02)

    def test_binarize_draws_bernoulli_pixels(self, images):
        model = VAE(binarize=True, seed=0)
        binary = model.binarize_inputs(tf.constant(images)).numpy()
        assert set(np.unique(binary)) <= {0.0, 1.0}
        assert binary.mean() == pytest.approx(images.mean(), abs=0.01)

    def test_binarized_inputs_are_their_own_targets(self, images, monkeypatch):
        # The likelihood is of the binary images the encoder read, not of the grey levels they were drawn from.
        model = VAE(latent_dim=4, binarize=True, seed=0)
        monkeypatch.setattr(model, "binarize_inputs", lambda x: tf.cast(x > 0.5, x.dtype))
        monkeypatch.setattr(model, "reparameterize", lambda z_mean, z_log_var: z_mean)
        batch = tf.constant(images)
        terms, _ = model.compute_loss_terms(batch, batch)
        binary = tf.cast(batch > 0.5, tf.float32)
        expected, _ = model.compute_loss_terms(binary, binary)  # binarised again: unchanged
        np.testing.assert_allclose(terms["reconstruction_loss"], expected["reconstruction_loss"], rtol=1e-6)

    @pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli"])
    def test_evaluation_binarizes_the_images_for_the_bernoulli_likelihood_alone(self, images, likelihood):
        model = VAE(latent_dim=2, likelihood=likelihood, seed=0)
        seen = []
        model.negative_log_likelihood = lambda x, k, labels=None: seen.append(x) or tf.zeros(len(x))
        model.evaluation_metrics(images, np.random.default_rng(0), nll_samples=5)
        expected = (np.random.default_rng(0).uniform(size=images.shape) < images).astype(np.float32)
        assert len(seen) == 2  # nll and neg_elbo
        for given in seen:
            np.testing.assert_array_equal(given, expected if likelihood == "bernoulli" else images)

    @pytest.mark.parametrize("kwargs", [{}, {"architecture": "conv", "latent_dim": 2, "beta": 4.0}])
    def test_serialization(self, kwargs):
        self.run_serialization_test(VAE(**kwargs))

    def test_saving(self, images, tmp_path):
        loaded = self.run_saving_test(VAE(latent_dim=2, seed=0), images, tmp_path)
        assert loaded.latent_dim == 2

    def test_fit_on_real_mnist_lowers_validation_loss(self):
        self.run_fit_test(
            VAE(latent_dim=8, seed=0),
            mnist("train", limit=4096, batch_size=128),
            mnist("test", limit=512),
            epochs=2,
            val_rtol=0.02,
        )

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="architecture must be one of"):
            VAE(architecture="rnn")
        with pytest.raises(ValueError, match="beta must be >= 0"):
            VAE(beta=-1)
