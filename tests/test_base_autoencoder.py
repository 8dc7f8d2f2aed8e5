import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_autoencoder import small_autoencoder
from test_case import mnist

import aekeras.models
from aekeras import optimizers
from aekeras.models import (
    IWAE,
    VAE,
    VQVAE,
    Autoencoder,
    ConditionalVAE,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
)


@pytest.fixture(scope="module")
def images():
    return next(iter(mnist("test", limit=64, batch_size=64))).numpy()


class TestBaseAutoencoder:
    def test_labels_and_sample_weights_are_refused(self, images):
        model = small_autoencoder()
        model.compile(optimizer="adam")
        labels = np.zeros(64, np.int64)
        with pytest.raises(ValueError, match=r"not\s+\(images, labels\)"):
            model.fit(images, labels, epochs=1, verbose=0)
        with pytest.raises(ValueError, match="does not take sample weights"):
            model.fit(images, images, sample_weight=np.ones(64), epochs=1, verbose=0)
        with pytest.raises(ValueError, match="does not take class weights"):
            model.fit(images, images, class_weight={0: 1.0}, epochs=1, verbose=0)

    @pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
    def test_a_mixed_precision_policy_is_refused_in_one_line(self, policy, tmp_path):
        saved = tmp_path / "dense.keras"
        DenseAutoencoder(latent_dim=8).save(saved)
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        refused = pytest.raises(
            ValueError, match=f"computes in float32, not under the dtype policy '{policy}'"
        )
        try:
            with refused:
                DenseAutoencoder(latent_dim=8)
            # Its layers take the global policy whatever the model's own dtype:
            # a loaded model, or one given dtype="float32", computed in float16.
            with refused:
                DenseAutoencoder(latent_dim=8, dtype="float32")
            with refused:
                keras.models.load_model(saved)
        finally:
            keras.config.set_dtype_policy(previous)
        assert keras.models.load_model(saved).decoder.compute_dtype == "float32"

    def test_another_keras_backend_is_refused_in_one_line_on_import(self, monkeypatch):
        """Under KERAS_BACKEND=torch (or keras.json's) the models imported, and compile failed in PyTorch."""
        monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
        with pytest.raises(
            ImportError, match=r"^aekeras runs on Keras's TensorFlow backend, not on 'torch' "
        ):
            importlib.reload(aekeras.models)  # fails before anything in the package is replaced

    def test_a_channels_first_image_data_format_changes_no_model(self, images, tmp_path):
        """keras.json's "channels_first" stopped a conv model's build and load, and a dense model loaded
        under it flattened its pixels in another order than it trained on: other outputs, silently."""
        built = {
            "dense": DenseAutoencoder(latent_dim=8),
            "conv": ConvAutoencoder(filters=(4, 4, 4), latent_dim=8),  # pooling, cropping, flattening
            "vae": VAE(architecture="conv", latent_dim=2, filters=(4, 4, 4)),  # strides, transposes
        }
        for name, model in built.items():
            model.save(tmp_path / f"{name}.keras")
        batch = images[:16]

        def trained(model):
            # Training too: the output convolution's depthwise form and the upsampling's gradient.
            model.compile(optimizer=keras.optimizers.SGD(0.1))
            model.train_on_batch(batch)
            return model.get_weights()

        reference = ConvAutoencoder(filters=(4, 4, 4))
        previous = keras.config.image_data_format()
        keras.config.set_image_data_format("channels_first")
        try:
            for name, model in built.items():
                loaded = keras.models.load_model(tmp_path / f"{name}.keras")
                np.testing.assert_array_equal(
                    loaded.predict(batch, verbose=0), model.predict(batch, verbose=0)
                )
            conv = ConvAutoencoder(filters=(4, 4, 4))
            conv.set_weights(reference.get_weights())
            weights = trained(conv)
        finally:
            keras.config.set_image_data_format(previous)
        for weight, expected in zip(weights, trained(reference), strict=True):
            np.testing.assert_allclose(weight, expected, rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize(
        "build",
        [
            lambda: ContractiveAutoencoder(DenseAutoencoder(latent_dim=4)),
            lambda: VQVAE(filters=(8, 8), embedding_dim=4, num_embeddings=8),
            lambda: VAE(latent_dim=2, hidden_dims=(8,)),
        ],
    )
    def test_evaluate_lists_the_loss_first_as_metrics_names_says(self, images, build):
        """Keras sorted the figures: evaluate(x)[0] was the penalty, codebook_usage or the KL term."""
        model = build()
        model.compile(optimizer="adam", metrics=["mae"])
        logs = model.evaluate(images, verbose=0, return_dict=True)
        listed = model.evaluate(images, verbose=0)
        assert model.metrics_names[0] == "loss" and model.metrics_names[-1] == "mae"
        assert dict(zip(model.metrics_names, listed, strict=True)) == logs

    def test_layer_penalties_join_the_loss(self, images):
        encoder = keras.Sequential(
            [keras.layers.Flatten(), keras.layers.Dense(16, kernel_regularizer=keras.regularizers.L2(1.0))]
        )
        decoder = keras.Sequential([keras.layers.Dense(784), keras.layers.Reshape((28, 28, 1))])
        model = Autoencoder(encoder, decoder)
        model.compile(optimizer="adam")
        logs = model.evaluate(images, verbose=0, return_dict=True)
        penalty = float(np.sum(np.square(encoder.layers[1].kernel.numpy())))
        assert logs["loss"] == pytest.approx(logs["reconstruction_loss"] + penalty, rel=1e-5)


MODELS = {
    "dense": lambda: DenseAutoencoder(latent_dim=8),
    "conv": lambda: ConvAutoencoder(filters=(8, 4), latent_dim=4),
    "denoising": lambda: DenoisingAutoencoder(DenseAutoencoder(latent_dim=16), seed=3),
    "contractive": lambda: ContractiveAutoencoder(
        DenseAutoencoder(latent_dim=8, activation="sigmoid", output_activation="sigmoid", value_range=(0, 1)),
        contraction_weight=0.1,
    ),
    "vae": lambda: VAE(latent_dim=4, hidden_dims=(32,), seed=3),
    "vqvae": lambda: VQVAE(filters=(8, 8), embedding_dim=4, num_embeddings=8),
    "iwae": lambda: IWAE(num_samples=3, latent_dim=4, hidden_dims=(32,), binarize=True, seed=3),
    "cvae": lambda: ConditionalVAE(latent_dim=4, hidden_dims=(32,), binarize=True, seed=3),
}


def train_one_step(
    model, images, strategy, labels=None, optimizer=lambda: keras.optimizers.SGD(0.1), batch_shards=None
):
    with strategy.scope():
        model.compile(optimizer=optimizer(), batch_shards=batch_shards)
    model.fit(images, labels, epochs=1, batch_size=len(images), shuffle=False, verbose=0)
    return [w.numpy() for w in model.weights]


@pytest.fixture(scope="module")
def mirrored():
    # One strategy per process: a second one's CPU collectives clash with the first's.
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) == 2, "conftest.py splits the CPU into two logical devices"
    return tf.distribute.MirroredStrategy(devices)


@pytest.mark.parametrize(
    "name, replica_shards", [(name, None) for name in sorted(MODELS)] + [("denoising", 2), ("vae", 3)]
)
def test_two_replicas_match_one_device(images, mirrored, name, replica_shards):
    # Replicas train one shard each by default; with shards of their own, the
    # noise each example gets must still be the one device's.
    labels = None
    if name == "cvae":
        labels = next(iter(mnist("test", limit=64, batch_size=64, labels=True)))[1].numpy()
    low, high = MODELS[name]().value_range
    batch = images * (high - low) + low
    keras.utils.set_random_seed(0)
    single = MODELS[name]()
    initial = single.get_weights()
    with mirrored.scope():
        replicated = MODELS[name]()
        replicated.set_weights(initial)
    got = train_one_step(replicated, batch, mirrored, labels, batch_shards=replica_shards)
    expected = train_one_step(single, batch, tf.distribute.get_strategy(), labels, batch_shards=1)
    assert mirrored.num_replicas_in_sync == 2
    assert replicated.batch_shards == (replica_shards or 1)
    assert any(not np.allclose(w, w0) for w, w0 in zip(expected, initial, strict=True))
    # The codebook's update sums over every code position of the batch
    # (3,136 here), so the two replicas' summation order shows at ~4e-6.
    atol = 1e-5 if name == "vqvae" else 2e-6
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=atol)


def test_evaluate_under_a_strategy_after_training_reads_each_batch_once(images, mirrored):
    # Keras would first take a batch from an iterator of its own and drop it
    # mid-prefetch (which crashed multi-worker runs now and then); after
    # training there is nothing left for that batch to build.
    drawn = []

    def counted(batch):
        tf.py_function(lambda: drawn.append(1), [], [])
        return batch

    test_data = tf.data.Dataset.from_tensor_slices(images).batch(16, drop_remainder=True).map(counted)
    batches = int(test_data.cardinality())
    with mirrored.scope():
        model = MODELS["dense"]()
        model.compile(optimizer="adam")
    model.fit(test_data, epochs=1, verbose=0)
    drawn.clear()
    model.evaluate(test_data, verbose=0)
    assert batches >= 2 and len(drawn) == batches


def test_fused_adam_under_a_strategy_trains_as_on_one_device(images, mirrored):
    # Each replica updates its own copy of a variable, so there aekeras's Adam
    # makes Keras's update instead of its fused kernel's: the same step.
    keras.utils.set_random_seed(0)
    single = MODELS["dense"]()
    initial = single.get_weights()
    with mirrored.scope():
        replicated = MODELS["dense"]()
        replicated.set_weights(initial)
    batch = images * 2.0 - 1.0
    got = train_one_step(replicated, batch, mirrored, optimizer=lambda: optimizers.Adam(1e-3))
    expected = train_one_step(
        single, batch, tf.distribute.get_strategy(), optimizer=lambda: optimizers.Adam(1e-3)
    )
    assert type(replicated.optimizer) is optimizers.Adam
    assert any(not np.allclose(w, w0) for w, w0 in zip(expected, initial, strict=True))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-6)


def test_fit_on_the_pipeline_under_a_strategy_trains_as_without_one():
    # tf.data's default sharding rewrite broke the pipeline's gathered batches
    # under a one-replica strategy ("expected [256, ...] but got [512, ...]").
    keras.utils.set_random_seed(0)
    single = MODELS["dense"]()
    initial = single.get_weights()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        replicated = MODELS["dense"]()
        replicated.set_weights(initial)
        replicated.compile(optimizer=keras.optimizers.SGD(0.1))
    single.compile(optimizer=keras.optimizers.SGD(0.1), batch_shards=1)
    # In order: under a strategy, Keras reads a first batch before training.
    options = dict(limit=512, batch_size=256, value_range=single.value_range, shuffle=False)
    replicated.fit(mnist("train", **options), epochs=1, verbose=0)
    single.fit(mnist("train", **options), epochs=1, verbose=0)
    assert any(not np.allclose(w, w0) for w, w0 in zip(single.get_weights(), initial, strict=True))
    for a, b in zip(replicated.get_weights(), single.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-6)


def test_a_failed_fit_leaves_the_model_able_to_train(images):
    """Keras builds the optimizer in the first traced step; a fit that failed there broke the next one."""
    model = small_autoencoder()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="expects inputs of shape"):
        model.fit(images[:, :-1, :-1], epochs=1, verbose=0)
    history = model.fit(images, epochs=1, batch_size=32, verbose=0).history
    assert np.isfinite(history["loss"][0]) and int(model.optimizer.iterations) == len(images) // 32


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"cvae"}))
def test_encode_and_decode_build_functional_models(images, name):
    """A trained encoder as a feature extractor: `keras.Model(inputs, model.encode(inputs))`."""
    model = MODELS[name]()
    model(images[:2])
    inputs = keras.Input(images.shape[1:])
    extractor = keras.Model(inputs, model.encode(inputs))
    np.testing.assert_allclose(extractor.predict(images, verbose=0), model.encode(images), atol=1e-5)
    codes = keras.Input(model.code_shape((None, *images.shape[1:]))[1:])
    generator = keras.Model(codes, model.decode(codes))
    some_codes = np.asarray(model.encode(images[:4]))
    np.testing.assert_allclose(generator.predict(some_codes, verbose=0), model.decode(some_codes), atol=1e-5)


def test_a_frozen_model_fits_without_updates_as_in_keras(images):
    model = small_autoencoder()
    model.trainable = False
    model.compile(optimizer="adam")
    before = model.get_weights()
    history = model.fit(images, epochs=2, batch_size=32, verbose=0).history
    assert np.isfinite(history["loss"]).all() and history["loss"][0] == pytest.approx(history["loss"][1])
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations) == 2 * len(images) // 32  # the NaN stop's batch count
