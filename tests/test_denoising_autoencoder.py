import keras
import numpy as np
import pytest
from test_case import AutoencoderTestCase, mnist

from aekeras.models import ConvAutoencoder, DenoisingAutoencoder, DenseAutoencoder


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=32, value_range=(-1, 1)))).numpy()


def lecture_model(**kwargs):
    return DenoisingAutoencoder(DenseAutoencoder(latent_dim=500), seed=1, **kwargs)


class TestDenoisingAutoencoder(AutoencoderTestCase):
    def test_wraps_and_trains_the_given_model(self, images):
        base = DenseAutoencoder(latent_dim=500)
        model = DenoisingAutoencoder(base)
        assert model.encoder is base.encoder and model.decoder is base.decoder
        np.testing.assert_array_equal(model(images), base(images))  # inference: no noise

    def test_lecture_dropout_noise_is_fresh_every_call(self, images):
        model = lecture_model()
        first, second = model.corrupt(images).numpy(), model.corrupt(images).numpy()
        assert not np.array_equal(first, second)
        for corrupted in (first, second):
            ratio = corrupted[images != 0] / images[images != 0]
            assert set(np.unique(ratio)) == {0.0, 2.0}  # the mask of nn.Dropout(0.5)
            assert np.mean(ratio == 0) == pytest.approx(0.5, abs=0.02)

    def test_seeded_noise_is_the_same_every_call_and_leaves_trainings_stream_alone(self, images):
        # What the pictures show every epoch: corrupted alike, and no draw taken from training's noise.
        model = lecture_model()
        state = keras.ops.convert_to_numpy(model.seed_generator.state)
        first = model.picture_rows(images[:4] / 2 + 0.5)[1]
        np.testing.assert_array_equal(first, model.picture_rows(images[:4] / 2 + 0.5)[1])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.seed_generator.state), state)

    def test_fresh_noise_every_batch_inside_fit(self, images):
        # The same batch, trained on twice with learning rate 0: a fixed noisy
        # copy would give equal losses; fresh noise gives different ones.
        model = lecture_model()
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        losses = [model.train_on_batch(images, return_dict=True)["loss"] for _ in range(3)]
        assert len(set(losses)) == 3

    @pytest.mark.parametrize("kind, level", [("gaussian", 0.3), ("salt_and_pepper", 0.2)])
    def test_other_noises_stay_in_range(self, images, kind, level):
        corrupted = lecture_model(noise=kind, noise_level=level).corrupt(images).numpy()
        assert corrupted.min() >= -1 and corrupted.max() <= 1
        assert not np.array_equal(corrupted, images)

    def test_evaluate_reports_corrupted_and_clean_losses(self, images):
        model = lecture_model()
        model.compile(optimizer="adam")
        logs = model.evaluate(images, verbose=0, return_dict=True)
        clean = np.mean((model(images).numpy() - images) ** 2)
        assert logs["clean_reconstruction_loss"] == pytest.approx(clean, rel=1e-5)
        assert logs["loss"] != pytest.approx(clean, rel=1e-3)

    def test_serialization(self):
        self.run_serialization_test(lecture_model(noise="gaussian", noise_level=0.2))
        self.run_serialization_test(DenoisingAutoencoder(ConvAutoencoder(latent_dim=8)))

    def test_saving(self, images, tmp_path):
        loaded = self.run_saving_test(lecture_model(), images, tmp_path)
        assert loaded.noise == "dropout"
        assert loaded.get_config()["autoencoder"]["class_name"] == "DenseAutoencoder"
        # The wrapped model's layers are the wrapper's, each weight tracked once.
        layers_weights = [*loaded.encoder.weights, *loaded.decoder.weights]
        assert len(loaded.weights) == len(layers_weights)
        assert {id(w) for w in loaded.weights} == {id(w) for w in layers_weights}

    def test_fit_on_real_mnist_lowers_validation_loss(self):
        train = mnist("train", limit=4096, value_range=(-1, 1))
        test = mnist("test", limit=1024, value_range=(-1, 1))
        before, after = self.run_fit_test(lecture_model(), train, test, epochs=2, val_rtol=0.02)
        assert after["clean_reconstruction_loss"] < before["clean_reconstruction_loss"]

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="unknown noise 'blur'"):
            lecture_model(noise="blur")
        with pytest.raises(ValueError, match=r"noise_level for dropout must be in \[0, 1\), got 1.0"):
            lecture_model(noise_level=1.0)
        with pytest.raises(ValueError, match=r"noise_level for gaussian must be >= 0, got -0.1"):
            lecture_model(noise="gaussian", noise_level=-0.1)
        with pytest.raises(ValueError, match=r"noise_level for salt_and_pepper must be in \[0, 1\], got 1.5"):
            lecture_model(noise="salt_and_pepper", noise_level=1.5)
        with pytest.raises(TypeError, match="expected an aekeras autoencoder to wrap"):
            DenoisingAutoencoder(keras.Sequential([keras.layers.Dense(3)]))
        from aekeras.models import VAE, ContractiveAutoencoder

        for wrapper in (DenoisingAutoencoder, ContractiveAutoencoder):
            with pytest.raises(TypeError, match="got VAE, which has an objective of its own"):
                wrapper(VAE(latent_dim=2))
