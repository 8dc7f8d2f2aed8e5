"""The fast paths train exactly as the plain one: several steps per call, XLA, the index pipeline."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import mnist

from aekeras import data
from aekeras.data import pipeline
from aekeras.data.pipeline import index_batches
from aekeras.models import (
    ConditionalVAE,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
)
from aekeras.models.blocks import NearestUpsampling2D, OutputConv2D

STEPS = 7  # 1,024 images in batches of 128: 8 steps an epoch


def train(build, epochs=2, **compile_options):
    """Trains on a fresh pipeline: each pipeline reshuffles on every pass over it."""
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_options)
    dataset = mnist("train", limit=1024, batch_size=128, value_range=model.value_range)
    model.fit(dataset, epochs=epochs, verbose=0)
    return model


# Deterministic models: the ones that draw noise draw it as often on every
# path, but Keras's one-step loop makes one extra draw at the end of an epoch.
@pytest.mark.parametrize(
    "build, xla",
    [
        (lambda: DenseAutoencoder(latent_dim=8), True),
        (lambda: ConvAutoencoder(filters=(8, 4)), True),
        # XLA takes a minute to compile the Jacobian, and is not its default.
        (
            lambda: ContractiveAutoencoder(
                DenseAutoencoder(latent_dim=4, activation="sigmoid", value_range=(0, 1))
            ),
            False,
        ),
    ],
    ids=["dense", "conv", "contractive"],
)
def test_several_steps_per_call_and_xla_give_the_one_step_weights(build, xla):
    one_step = train(build, steps_per_execution=1, jit_compile=False)
    paths = [({"steps_per_execution": STEPS, "jit_compile": False}, 1e-6)]
    if xla:
        paths.append(({"steps_per_execution": STEPS, "jit_compile": True}, 2e-4))
    for options, atol in paths:
        fast = train(build, **options)
        for a, b in zip(fast.get_weights(), one_step.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, atol=atol)


@pytest.mark.parametrize(
    "build, compile_options",
    [
        (lambda: DenseAutoencoder(latent_dim=8), {}),  # in batch shards by default
        (lambda: DenseAutoencoder(latent_dim=8), {"jit_compile": True}),
        (lambda: DenoisingAutoencoder(DenseAutoencoder(latent_dim=8)), {}),  # noise on the scaled images
        (lambda: ConditionalVAE(latent_dim=2, hidden_dims=(16,)), {}),  # (images, labels) batches
    ],
    ids=["dense", "dense-xla", "denoising", "cvae"],
)
def test_uint8_batches_train_and_evaluate_as_their_float_batches(build, compile_options):
    def trained(keep_uint8):
        keras.utils.set_random_seed(0)
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_options)
        options = dict(value_range=model.value_range, labels=model.conditioned, keep_uint8=keep_uint8)
        model.fit(mnist("train", limit=1024, batch_size=128, **options), epochs=2, verbose=0)
        return model, model.evaluate(mnist("test", limit=500, **options), verbose=0, return_dict=True)

    (floats, float_metrics), (pixels, pixel_metrics) = trained(False), trained(True)
    for a, b in zip(pixels.get_weights(), floats.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert pixel_metrics == pytest.approx(float_metrics, rel=1e-5)


def poisoned(batches, bad_batch):
    """The batches with NaN pixels in the `bad_batch`-th one drawn (counting over epochs from 1)."""
    drawn = tf.Variable(0)

    def poison(images):
        drawn.assign_add(1)
        return images * tf.where(drawn == bad_batch, float("nan"), 1.0)

    return batches.map(poison)


@pytest.mark.parametrize("steps", [1, STEPS, 100])
def test_the_nan_stop_names_the_exact_batch_and_skips_every_later_update(steps):
    clean = mnist("train", limit=1024, batch_size=128, value_range=(-1, 1), shuffle=False)
    keras.utils.set_random_seed(0)
    model = DenseAutoencoder(latent_dim=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=steps)
    initial = model.get_weights()
    # Batch 11 drawn is epoch 2's third (8 batches an epoch).
    with pytest.raises(FloatingPointError) as stopped:
        model.fit(poisoned(clean, 11), epochs=3, verbose=0)
    # A fit of the user's own: no checkpoint or command-line flag to name.
    assert str(stopped.value) == (
        "training stopped: the loss became nan at epoch 2, batch 3; the model keeps the weights of the last "
        "finite step; look for NaN or infinite values, or pixels off the model's scale, in the data, or lower the learning rate"
    )
    # The weights are those after the 10 good steps: no update from the NaN or after it.
    keras.utils.set_random_seed(0)
    reference = DenseAutoencoder(latent_dim=8)
    reference.set_weights(initial)
    reference.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=1)
    reference.fit(clean.repeat(2).take(10), epochs=1, verbose=0)
    for a, b in zip(model.trainable_weights, reference.trainable_weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    # A later fit starts clean.
    history = model.fit(clean, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_a_first_epoch_stop_in_a_user_fit_names_no_checkpoint_and_no_other_optimizer():
    """It said "no epoch had completed, so there is no checkpoint" and "Adam's usual" to an SGD user."""
    clean = mnist("train", limit=1024, batch_size=128, value_range=(-1, 1), shuffle=False)
    model = DenseAutoencoder(latent_dim=8)
    model.compile(optimizer=keras.optimizers.SGD(1e4))
    with pytest.raises(
        FloatingPointError,
        match=r"at epoch 1, batch [1-3]; the model keeps the weights of the last finite step; the learning rate "
        r"10000 is likely too high: rebuild or reload the model and lower the learning rate, or look for NaN",
    ):
        model.fit(poisoned(clean, 3), epochs=1, verbose=0)


def test_step_counts_are_honoured_whatever_the_steps_per_call():
    """Keras runs whole calls: 5 steps an epoch at 32 steps per call would train 32."""
    clean = mnist("train", limit=1024, batch_size=128, value_range=(-1, 1), shuffle=False)
    keras.utils.set_random_seed(0)
    model = DenseAutoencoder(latent_dim=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=STEPS)
    model.fit(clean.repeat(), steps_per_epoch=5, epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 10 and model.steps_per_execution == STEPS
    assert model.predict(clean, steps=2, verbose=0).shape == (256, 28, 28, 1)
    three = model.evaluate(clean, steps=3, verbose=0, return_dict=True)
    assert three == pytest.approx(model.evaluate(clean.take(3), verbose=0, return_dict=True), rel=1e-6)
    # The NaN stop counts the batches of such epochs too: batch 8 drawn is epoch 2's third.
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 3"):
        model.fit(poisoned(clean.repeat(), 8), steps_per_epoch=5, epochs=3, verbose=0)


def test_float64_and_float16_images_train_as_float32_ones_and_other_integers_are_refused(digits):
    images = digits[:256].astype(np.float64)  # as `pixels / 255.0` gives them

    def trained(dtype):
        keras.utils.set_random_seed(0)
        model = ConvAutoencoder(filters=(4, 2))
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        batches = tf.data.Dataset.from_tensor_slices(images.astype(dtype)).batch(32)
        model.fit(batches, epochs=1, verbose=0)
        return model, model.evaluate(batches, verbose=0, return_dict=True)

    (reference, reference_loss), (wide, wide_loss) = trained(np.float32), trained(np.float64)
    for a, b in zip(wide.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert wide_loss == pytest.approx(reference_loss, rel=1e-6)
    assert np.isfinite(trained(np.float16)[1]["loss"])
    with pytest.raises(TypeError, match="takes images as uint8 pixels .0-255. or floats .* got int64"):
        reference.fit((images * 255).astype(np.int64), epochs=1, verbose=0)


def _upsampling_and_gradient(layer, images, weights, jit_compile=False):
    @tf.function(jit_compile=jit_compile)
    def run(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = layer(images)
            loss = tf.reduce_sum(outputs * weights)
        return outputs, tape.gradient(loss, images)

    return [t.numpy() for t in run(tf.constant(images))]


def test_nearest_upsampling_is_upsampling2d_with_its_gradient(digits):
    # Two real digits as a 28x14x2 image of odd width, weighted by a third
    # upsampled digit, so the gradient of each 2x2 block sums four pixels.
    images = np.concatenate([digits[:3, :, :14], digits[3:6, :, 14:]], axis=-1)
    weights = tf.constant(np.repeat(np.repeat(digits[6:9, :, :14], 2, axis=1), 2, axis=2) - 0.5)
    expected = _upsampling_and_gradient(keras.layers.UpSampling2D(2), images, weights)
    for jit_compile in (False, True):  # the custom gradient compiles with XLA too
        got = _upsampling_and_gradient(NearestUpsampling2D(), images, weights, jit_compile)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-6, atol=1e-6)
    assert NearestUpsampling2D().compute_output_shape((None, 5, 4, 2)) == (None, 10, 8, 2)
    # Images whose size is known only when they come: the shapes are computed then.
    unknown_size = tf.function(NearestUpsampling2D(), input_signature=[tf.TensorSpec((None, None, None, 2))])
    np.testing.assert_array_equal(unknown_size(tf.constant(images)), expected[0])


def _outputs_and_gradients(layer, images, weights, training, jit_compile=False):
    @tf.function(jit_compile=jit_compile)
    def run(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = layer(images, training=training)
            loss = tf.reduce_sum(outputs * weights)
        return outputs, *tape.gradient(loss, [images, layer.kernel, layer.bias])

    op_types = {op.type for op in run.get_concrete_function(tf.constant(images)).graph.get_operations()}
    return [t.numpy() for t in run(tf.constant(images))], op_types


@pytest.mark.parametrize("channels", [1, 3])
def test_the_output_convolution_trains_as_the_plain_one(digits, channels):
    # Sixteen real digits as channels of a 28x28x16 input, weighted by others.
    images = np.moveaxis(digits[:64].reshape(4, 16, 28, 28), 1, -1)
    weights = tf.constant(np.moveaxis(digits[64 : 64 + 4 * channels].reshape(4, channels, 28, 28), 1, -1))
    layer = OutputConv2D(channels, 3, padding="same", activation="sigmoid", bias_initializer="ones")
    layer.build(images.shape)
    plain, plain_ops = _outputs_and_gradients(layer, images, weights, training=False)
    trained, trained_ops = _outputs_and_gradients(layer, images, weights, training=True)
    xla, xla_ops = _outputs_and_gradients(layer, images, weights, training=True, jit_compile=True)
    for got, expected in zip(trained + xla, plain + plain, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # One channel trains as a depthwise convolution; inference, and so every
    # export, runs the plain one, as do training to several channels and
    # training compiled by XLA.
    assert layer.trains_depthwise == (channels == 1)
    assert ("DepthwiseConv2dNative" in trained_ops) == (channels == 1)
    for op_types in (plain_ops, xla_ops):
        assert "DepthwiseConv2dNative" not in op_types and "Conv2D" in op_types
    strided = OutputConv2D(1, 3, strides=2, padding="same")
    assert not strided.trains_depthwise
    assert OutputConv2D.from_config(layer.get_config()).get_config() == layer.get_config()


def test_index_batches_are_a_fresh_seeded_permutation_every_epoch():
    dataset = index_batches(1000, 128, shuffle=True, seed=5, drop_remainder=False)
    epochs = [np.concatenate([b.numpy() for b in dataset]) for _ in range(3)]
    assert [len(b) for b in dataset] == [128] * 7 + [104]
    for order in epochs:
        assert sorted(order) == list(range(1000))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    again = index_batches(1000, 128, shuffle=True, seed=5, drop_remainder=False)
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in again]), epochs[0])
    # Keras needs the count to end an epoch mid-call without a warning.
    assert int(dataset.cardinality()) == 8
    assert int(index_batches(1000, 128, True, 5, drop_remainder=True).cardinality()) == 7
    in_order = index_batches(1000, 128, shuffle=False, seed=5, drop_remainder=True)
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in in_order]), np.arange(896))


def test_the_in_memory_pipeline_gathers_the_right_images(mnist_dir):
    images, labels = data.load_arrays("mnist", "test", data_dir=mnist_dir)
    dataset = data.load(
        "mnist", "test", batch_size=100, labels=True, shuffle=True, seed=1, limit=1000, data_dir=mnist_dir
    )
    for batch, batch_labels in dataset:
        # Each image carries its own label: find it by its pixels.
        for image, label in zip(batch.numpy()[:5], batch_labels.numpy()[:5], strict=True):
            index = np.flatnonzero((images[:1000] == image).all(axis=(1, 2, 3)))
            assert label in labels[index]


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_batches_sliced_from_gathers_of_many_are_the_index_orders_batches(
    mnist_dir, monkeypatch, drop_remainder
):
    # Gathers of 4 batches of 64 over 1,000 images: three whole ones, then
    # three batches and 40 images, in every epoch.
    monkeypatch.setattr(pipeline, "MAX_BATCHES_PER_GATHER", 4)
    images, labels = data.load_arrays("mnist", "test", data_dir=mnist_dir)
    options = dict(batch_size=64, shuffle=True, seed=3, limit=1000, drop_remainder=drop_remainder)
    dataset = data.load("mnist", "test", labels=True, value_range=(-1.0, 1.0), data_dir=mnist_dir, **options)
    orders = index_batches(1000, 64, True, 3, drop_remainder)
    expected_counts = [64] * 15 + ([] if drop_remainder else [40])
    for _ in range(2):  # a new order each epoch, the same on both sides
        batches = list(dataset)
        assert [len(x) for x, _ in batches] == expected_counts
        assert int(dataset.cardinality()) == len(expected_counts)
        for (x, y), indices in zip(batches, orders, strict=True):
            np.testing.assert_array_equal(y.numpy(), labels[indices.numpy()])
            expected = pipeline.scaled_batch(tf.constant(images[indices.numpy()]), (-1.0, 1.0))
            np.testing.assert_array_equal(x.numpy(), expected.numpy())


def test_fit_on_the_pipeline_warns_of_nothing():
    # 8 batches in calls of 32 steps: Keras would warn "ran out of data" for
    # a dataset of unknown size, and "shuffle ... will be ignored" for any.
    model = DenseAutoencoder(latent_dim=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    dataset = mnist("train", limit=1024, batch_size=128, value_range=model.value_range)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(dataset, epochs=2, validation_data=dataset, verbose=0)
    assert len(history.history["loss"]) == 2
