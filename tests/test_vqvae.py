import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import AutoencoderTestCase, mnist

from aekeras.models import VQVAE


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=64, batch_size=64))).numpy()


class TestVQVAE(AutoencoderTestCase):
    def test_codes_are_codebook_vectors_and_indices_decode_alike(self, images):
        model = VQVAE(num_embeddings=8, embedding_dim=4)
        codes = model.encode(images).numpy()
        indices = model.encode_indices(images).numpy()
        assert codes.shape == (64, 7, 7, 4) and indices.shape == (64, 7, 7) and indices.dtype == np.int32
        codebook = model.quantizer.codebook.numpy()
        np.testing.assert_array_equal(codes, codebook[indices])
        # Each is the nearest codebook vector to the encoder's output.
        continuous = model.encode_continuous(images).numpy()
        distances = np.sum((continuous[..., None, :] - codebook) ** 2, axis=-1)
        np.testing.assert_array_equal(indices, np.argmin(distances, axis=-1))
        np.testing.assert_allclose(model.decode_indices(indices), model(images), atol=1e-6)

    def test_loss_terms_and_straight_through_gradients(self, images):
        model = VQVAE(num_embeddings=8, embedding_dim=4, commitment_cost=0.5)
        batch = tf.constant(images)
        with tf.GradientTape() as tape:
            terms, _ = model.compute_loss_terms(batch, batch, training=True)
            loss = tf.reduce_mean(terms["reconstruction_loss"])
        z_e = model.encode_continuous(images).numpy()
        z_q = model.encode(images).numpy()
        expected_vq = 1.5 * np.mean((z_e - z_q) ** 2, axis=(1, 2, 3))  # on the reconstruction's scale
        np.testing.assert_allclose(terms["vq_loss"], expected_vq, rtol=1e-4)
        used = len(np.unique(model.encode_indices(images)))
        np.testing.assert_allclose(terms["codebook_usage"], used / 8)
        # The reconstruction's gradient reaches the encoder through the
        # quantisation, and not the codebook (the vq term moves that).
        paths = [w.path.split("/", 1)[1] for w in model.trainable_weights]
        gradients = dict(zip(paths, tape.gradient(loss, model.trainable_weights), strict=True))
        assert all(g is not None for path, g in gradients.items() if path.startswith("encoder"))
        assert gradients["quantizer/codebook"] is None

    def test_training_moves_the_codebook_to_the_codes(self, images):
        def quantization_error(model):
            # Relative to the codes' own spread, which grows as the encoder trains (and vq_loss with it).
            z_e, z_q = model.encode_continuous(images).numpy(), model.encode(images).numpy()
            return np.mean((z_e - z_q) ** 2) / np.var(z_e)

        keras.utils.set_random_seed(0)
        model = VQVAE(num_embeddings=32, embedding_dim=8)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        before = model.quantizer.codebook.numpy().copy(), quantization_error(model)
        history = model.fit(mnist("train", limit=4096, batch_size=128), epochs=3, verbose=0).history
        assert not np.allclose(model.quantizer.codebook.numpy(), before[0])
        # 0.82 before training, 0.04 after (0.02 and 0.06 from seeds 1 and 2).
        assert quantization_error(model) < min(0.2, before[1] / 4)
        assert 0 < history["codebook_usage"][-1] <= 1

    @pytest.mark.parametrize(
        "kwargs", [{}, {"filters": (8, 16, 16), "num_embeddings": 5, "embedding_dim": 3}]
    )
    def test_serialization(self, kwargs):
        self.run_serialization_test(VQVAE(**kwargs))

    def test_saving(self, images, tmp_path):
        loaded = self.run_saving_test(VQVAE(num_embeddings=8, embedding_dim=4), images, tmp_path)
        np.testing.assert_array_equal(loaded.encode_indices(images), loaded.encode_indices(images))
        assert loaded.num_embeddings == 8

    def test_fit_on_real_mnist_lowers_validation_loss(self):
        self.run_fit_test(
            VQVAE(num_embeddings=16, embedding_dim=4),
            mnist("train", limit=4096, batch_size=128),
            mnist("test", limit=512),
        )

    def test_bad_arguments(self, images):
        with pytest.raises(ValueError, match="num_embeddings"):
            VQVAE(num_embeddings=0)
        with pytest.raises(ValueError, match="commitment_cost must be >= 0"):
            VQVAE(commitment_cost=-1)
        with pytest.raises(ValueError, match=r"expects indices of shape \(batch, 7, 7\)"):
            VQVAE().decode_indices(np.zeros((2, 4, 4), np.int32))


def test_the_codebook_stays_in_use(mnist_test_arrays):
    # With `vq_loss` summed over the 7x7x16 code against a per-pixel mean
    # reconstruction, 3 epochs left 2, 9 and 4 of the 64 vectors in use on
    # these digits (seeds 0, 1, 2); on the reconstruction's scale, 22, 18, 21.
    keras.utils.set_random_seed(0)
    model = VQVAE()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(mnist("train", limit=4096, batch_size=128), epochs=3, verbose=0)
    assert len(np.unique(model.encode_indices(mnist_test_arrays[0][:1000]))) > 12
