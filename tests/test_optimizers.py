"""aekeras's Adam: Keras's arithmetic in one fused kernel per variable."""

import keras
import numpy as np
import tensorflow as tf

from aekeras import models, optimizers, registry


def _trained_weights(name, optimizer, images, **options):
    """A model's weights and its optimizer's variables after two epochs on `images` in order."""
    keras.utils.set_random_seed(0)
    model = registry.build_model(name, None, seed=0, **options)
    model.compile(optimizer=optimizer, steps_per_execution=4)
    model.fit(model.image_spec.to_model_scale(images), epochs=2, batch_size=128, shuffle=False, verbose=0)
    return [w.numpy() for w in model.weights] + [v.numpy() for v in optimizer.variables]


def _kernels_used(optimizer, variables):
    """The op types of one traced `apply_gradients` on `variables`."""
    gradients = [tf.ones_like(v) for v in variables]
    traced = tf.function(lambda: optimizer.apply_gradients(zip(gradients, variables, strict=True)))
    return {op.type for op in traced.get_concrete_function().graph.get_operations()}


def test_fused_adam_trains_as_keras_adam(digits):
    fused = _trained_weights("dense", optimizers.Adam(1e-3), digits[:1024])
    plain = _trained_weights("dense", keras.optimizers.Adam(1e-3), digits[:1024])
    assert len(fused) == len(plain)
    for got, expected in zip(fused, plain, strict=True):
        # Eigen's kernel rounds in its own order: the same to float32 precision.
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    assert np.abs(fused[0] - _trained_weights("dense", optimizers.Adam(1e-3), digits[:512])[0]).max() > 1e-4


def test_fused_adam_makes_keras_adams_updates(digits):
    # The VAE's own gradients on real digits, applied five times by each.
    # (Trajectories are not compared: Adam moves a weight whose gradient is
    # float rounding noise by a whole learning rate, in the noise's direction.)
    keras.utils.set_random_seed(0)
    model = models.VAE(seed=0)
    with tf.GradientTape() as tape:
        terms, _ = model.compute_loss_terms(digits[:256], digits[:256], training=True)
        loss = tf.reduce_mean(terms["reconstruction_loss"] + terms["kl_loss"])
    gradients = tape.gradient(loss, model.trainable_variables)
    results = []
    for optimizer in (optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)):
        variables = [keras.Variable(v.numpy()) for v in model.trainable_variables]
        for _ in range(5):
            optimizer.apply_gradients(zip(gradients, variables, strict=True))
        results.append([v.numpy() for v in [*variables, *optimizer.variables]])
    for got, expected in zip(*results, strict=True):
        # Within a ten-thousandth of an update (1e-3): float32 rounding, in Eigen's order.
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    moved = [np.abs(v - w.numpy()).max() for v, w in zip(results[0], model.trainable_variables, strict=False)]
    assert max(moved) > 4e-3  # five steps of 1e-3: the updates were made


def test_the_fused_kernel_runs_where_it_applies():
    variables = [keras.Variable(np.zeros((3, 2), "float32")), keras.Variable(np.zeros(2, "float32"))]
    kernels = _kernels_used(optimizers.Adam(), variables)
    assert "ResourceApplyAdam" in kernels and "Sqrt" not in kernels
    # AMSGrad keeps a third slot, which the kernel has not: Keras's update, with the same results.
    assert "ResourceApplyAdam" not in _kernels_used(optimizers.Adam(amsgrad=True), variables)


def test_amsgrad_and_schedules_match_keras(digits):
    schedule = {"class_name": "CosineDecay", "config": {"initial_learning_rate": 1e-3, "decay_steps": 16}}
    for options in ({"amsgrad": True}, {"learning_rate": keras.optimizers.schedules.deserialize(schedule)}):
        fused = _trained_weights("dense", optimizers.Adam(**options), digits[:1024])
        options = {
            k: keras.optimizers.schedules.deserialize(schedule) if k == "learning_rate" else v
            for k, v in options.items()
        }
        plain = _trained_weights("dense", keras.optimizers.Adam(**options), digits[:1024])
        for got, expected in zip(fused, plain, strict=True):
            np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_compile_adam_by_name_is_the_fused_one_and_saves_as_such(digits, tmp_path):
    model = models.DenseAutoencoder()
    model.compile(optimizer="adam")
    assert type(model.optimizer) is optimizers.Adam
    model.fit(model.image_spec.to_model_scale(digits[:512]), epochs=1, batch_size=128, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is optimizers.Adam
    for got, expected in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    # An optimizer object a user passes is used as it is.
    own = keras.optimizers.Adam()
    model.compile(optimizer=own)
    assert model.optimizer is own
