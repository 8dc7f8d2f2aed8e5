import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import AutoencoderTestCase, mnist

from aekeras import losses
from aekeras.models import ContractiveAutoencoder, ConvAutoencoder, DenseAutoencoder


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=16))).numpy()


def sigmoid_model(weight=1e-2, latent_dim=12):
    base = DenseAutoencoder(
        latent_dim=latent_dim, activation="sigmoid", output_activation="sigmoid", value_range=(0, 1)
    )
    return ContractiveAutoencoder(base, contraction_weight=weight)


class TestContractiveAutoencoder(AutoencoderTestCase):
    def test_tape_penalty_equals_the_closed_form(self, images):
        keras.utils.set_random_seed(0)
        model = sigmoid_model()
        # Positive weights make the J^T 1 shortcut's cross terms add up, so
        # it cannot agree with the Frobenius norm by chance.
        dense = model.encoder.layers[-1]
        dense.kernel.assign(np.abs(dense.kernel.numpy()))
        codes, penalty = model.jacobian_penalty(tf.constant(images))
        expected = losses.dense_sigmoid_contractive_penalty(codes, dense.kernel)
        np.testing.assert_allclose(penalty.numpy(), np.asarray(expected), rtol=1e-5)
        # Not the J^T 1 shortcut: the gradient of sum(h) gives another value.
        x = tf.constant(images)
        with tf.GradientTape() as tape:
            tape.watch(x)
            summed = tf.reduce_sum(model.encode(x))
        shortcut = tf.reduce_sum(tf.square(tape.gradient(summed, x)), axis=(1, 2, 3))
        assert np.all(shortcut.numpy() > 2 * penalty.numpy())

    def test_penalty_gradient_reaches_the_encoder(self, images):
        model = sigmoid_model()
        x = tf.constant(images)
        with tf.GradientTape() as tape:
            _, penalty = model.jacobian_penalty(x, training=True)
            mean_penalty = tf.reduce_mean(penalty)
        kernel, bias = model.encoder.layers[-1].kernel, model.encoder.layers[-1].bias
        grads = tape.gradient(mean_penalty, [kernel, bias])
        assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
        # Training with a large weight shrinks the penalty.
        model = sigmoid_model(weight=10.0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        history = model.fit(images, epochs=10, batch_size=16, verbose=0).history
        assert history["contractive_loss"][-1] < 0.5 * history["contractive_loss"][0]

    def test_loss_terms_are_reported(self, images):
        model = sigmoid_model(weight=0.5)
        model.compile(optimizer="adam")
        logs = model.evaluate(images, verbose=0, return_dict=True)
        _, penalty = model.jacobian_penalty(tf.constant(images))
        assert logs["contractive_loss"] == pytest.approx(0.5 * float(np.mean(penalty)), rel=1e-5)
        assert logs["loss"] == pytest.approx(logs["reconstruction_loss"] + logs["contractive_loss"], rel=1e-5)

    def test_any_encoder(self, images):
        model = ContractiveAutoencoder(ConvAutoencoder(latent_dim=4), contraction_weight=0.1)
        codes, penalty = model.jacobian_penalty(tf.constant(images[:4]))
        assert codes.shape == (4, 4) and penalty.shape == (4,) and np.all(penalty.numpy() > 0)

    def test_serialization(self):
        self.run_serialization_test(sigmoid_model())

    def test_saving(self, images, tmp_path):
        loaded = self.run_saving_test(sigmoid_model(), images, tmp_path)
        assert loaded.contraction_weight == pytest.approx(1e-2)

    def test_fit_on_real_mnist_lowers_validation_loss(self):
        self.run_fit_test(
            sigmoid_model(weight=1e-3, latent_dim=30),
            mnist("train", limit=2048, batch_size=128),
            mnist("test", limit=512),
            epochs=2,
        )

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="contraction_weight must be >= 0"):
            sigmoid_model(weight=-1)
