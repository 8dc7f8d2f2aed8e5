import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import AutoencoderTestCase, mnist

from aekeras.models import IWAE, VAE


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=64, batch_size=64))).numpy()


def binarized(images, seed=0):
    return (np.random.default_rng(seed).uniform(size=images.shape) < images).astype(np.float32)


def training_k_recorded(model):
    """The list to which every training step of `model` adds the k it was traced with, as it is traced."""
    traced, original = [], model.log_importance_weights

    def recording(inputs, targets, num_samples, training=False, **kwargs):
        if training:
            traced.append(num_samples)
        return original(inputs, targets, num_samples, training=training, **kwargs)

    model.log_importance_weights = recording
    return traced


class TestIWAE(AutoencoderTestCase):
    def test_the_loss_is_the_k_sample_bound_of_the_vae(self, images):
        model = IWAE(num_samples=4, latent_dim=4, seed=0)
        binary = tf.constant(binarized(images))
        log_weights, parameters = model.log_importance_weights(binary, binary, 4, for_training=True)
        assert log_weights.shape == (4, 64) and parameters.shape == (256, 28, 28, 1)
        terms, reconstructions = model.compute_loss_terms(binary, binary)
        assert set(terms) == {"iwae_loss"} and terms["iwae_loss"].shape == (64,)
        assert reconstructions.shape == (64, 28, 28, 1)
        # The same weights make a VAE: its k-sample estimate of -log p(x)
        # lies near the IWAE's loss, and below its ELBO.
        vae = VAE(latent_dim=4, seed=0)
        vae.set_weights(model.get_weights())
        iwae_loss = float(np.mean(terms["iwae_loss"]))
        estimate = float(np.mean(vae.negative_log_likelihood(binary, 4)))
        neg_elbo = np.mean([float(np.mean(vae.negative_log_likelihood(binary, 1))) for _ in range(10)])
        assert iwae_loss == pytest.approx(estimate, rel=0.02) and iwae_loss < neg_elbo

    def test_training_on_the_bound_tightens_it_past_the_vae(self):
        # The same data, weights and steps: the IWAE's own bound (k=5) ends
        # lower than the VAE's, where the VAE optimised the ELBO instead.
        train = mnist("train", limit=4096, batch_size=128)
        test = binarized(next(iter(mnist("test", limit=500, batch_size=500))).numpy())
        results = {}
        for model in (
            IWAE(num_samples=5, latent_dim=8, binarize=True, seed=0),
            VAE(latent_dim=8, binarize=True, seed=0),
        ):
            keras.utils.set_random_seed(0)
            model.set_weights(IWAE(num_samples=5, latent_dim=8, seed=1).get_weights())
            model.compile(optimizer=keras.optimizers.Adam(1e-3))
            model.fit(train, epochs=3, verbose=0)
            results[type(model).__name__] = np.mean(
                [np.mean(model.negative_log_likelihood(test, 5)) for _ in range(3)]
            )
        assert results["IWAE"] < results["VAE"]

    def test_warmup_trains_with_its_k_first_and_resumes_at_the_same_switch(self):
        config = IWAE(
            num_samples=6, warmup_num_samples=2, warmup_epochs=2, latent_dim=4, hidden_dims=(32,), seed=0
        ).get_config()
        train = mnist("train", limit=512, batch_size=128)

        def fit(initial_epoch, epochs=3, then=None):
            """The k each training step was traced with, and the k at each epoch's end.

            `then`: `(initial_epoch, epochs)` of a second fit of the same model.
            """
            model, seen = IWAE.from_config(config), []
            traced = training_k_recorded(model)
            model.compile(optimizer="adam", steps_per_execution=2)
            record = keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: seen.append(model.training_num_samples)
            )
            model.fit(train, initial_epoch=initial_epoch, epochs=epochs, verbose=0, callbacks=[record])
            if then:
                model.fit(train, initial_epoch=then[0], epochs=then[1], verbose=0, callbacks=[record])
            assert model.training_num_samples == 6  # evaluation and later calls use the model's own k
            # (Keras may trace a step more than once; what matters is which k, in which order.)
            return [k for i, k in enumerate(traced) if traced[i - 1 : i] != [k]], seen

        assert fit(initial_epoch=0) == ([2, 6], [2, 2, 6])
        # A fit that ends in the warm-up leaves no warm-up step behind for the next.
        assert fit(initial_epoch=0, epochs=1, then=(2, 3)) == ([2, 6], [2, 6])
        # A resumed fit past the warm-up trains with the model's own k at once.
        assert fit(initial_epoch=2) == ([6], [6])

    @pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
    def test_a_fit_stopped_during_the_warmup_leaves_the_models_own_k(self, stop):
        """Ctrl-C (or an error) in the warm-up skipped `on_train_end`: `train_on_batch` then trained with the warm-up's k."""
        model = IWAE(
            num_samples=6, warmup_num_samples=2, warmup_epochs=2, latent_dim=4, hidden_dims=(32,), seed=0
        )
        model.compile(optimizer="adam")
        train = mnist("train", limit=256, batch_size=128)
        traced = training_k_recorded(model)

        class StopInFirstEpoch(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                raise stop

        with pytest.raises(stop):
            model.fit(train, epochs=3, verbose=0, callbacks=[StopInFirstEpoch()])
        assert set(traced) == {2}  # it was stopped in the warm-up
        traced.clear()
        assert model.training_num_samples == 6
        model.train_on_batch(next(iter(train)))
        assert set(traced) == {6}

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"architecture": "conv", "latent_dim": 2, "num_samples": 3},
            {"num_samples": 50, "warmup_num_samples": 5, "warmup_epochs": 60},
        ],
    )
    def test_serialization(self, kwargs):
        self.run_serialization_test(IWAE(**kwargs))

    def test_saving(self, images, tmp_path):
        loaded = self.run_saving_test(IWAE(num_samples=3, latent_dim=2, seed=0), images, tmp_path)
        assert loaded.num_samples == 3

    def test_fit_on_real_mnist_lowers_validation_loss(self):
        self.run_fit_test(
            IWAE(num_samples=3, latent_dim=8, seed=0),
            mnist("train", limit=4096, batch_size=128),
            mnist("test", limit=512),
            epochs=2,
            val_rtol=0.02,
        )

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="beta must be 1"):
            IWAE(beta=2.0)
        with pytest.raises(ValueError, match="num_samples"):
            IWAE(num_samples=0)
        with pytest.raises(ValueError, match="needs warmup_num_samples"):
            IWAE(warmup_epochs=3)
        with pytest.raises(ValueError, match="needs warmup_epochs"):
            IWAE(warmup_num_samples=5)
        with pytest.raises(ValueError, match="warmup_epochs must be a whole number"):
            IWAE(warmup_num_samples=2, warmup_epochs=-1)
