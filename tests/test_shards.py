"""Batch shards train as the whole batch does, for every model; the step really holds one subgraph per shard."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_base_autoencoder import MODELS
from test_case import mnist

from aekeras import data
from aekeras.models import (
    IWAE,
    VAE,
    VQVAE,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
    shards,
)


def train(name, batch_shards, build=None, source=None, learning_rate=0.01):
    """Two epochs of batches of 128, 128 and 1 (257 images), four steps per call, from seed 0.

    `MODELS[name]` on MNIST, unless `build` and `source` (a data source
    for `aekeras.data.load`) say otherwise. SGD, not Adam: a gradient
    scaled wrongly would leave Adam's update almost as it is, and SGD's not
    at all.
    """
    keras.utils.set_random_seed(0)
    model = (build or MODELS[name])()
    optimizer = keras.optimizers.SGD(learning_rate)
    model.compile(optimizer=optimizer, batch_shards=batch_shards, steps_per_execution=4)
    options = dict(limit=257, batch_size=128, value_range=model.value_range)
    if source is not None:
        batches = data.load(source, "train", **options)
    else:
        batches = mnist("train", labels=getattr(model, "conditioned", False), **options)
    model.fit(batches, epochs=2, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shards_train_as_the_whole_batch(name):
    # The batch of 1 trains whole (an empty shard is no batch); the models'
    # noise is drawn once for the whole batch, so each example gets the
    # same. A difference of float rounding at a ReLU's kink can move one
    # unit's weights by some 4e-5 (the IWAE's, with 3 shards); noise drawn
    # per shard, or a gradient scaled by the shards, moves them by 1e-3 or more.
    keras.utils.set_random_seed(0)
    initial = MODELS[name]().get_weights()
    whole = train(name, 1)
    assert any(not np.allclose(w, w0) for w, w0 in zip(whole, initial, strict=True))
    for count in (2, 3):
        sharded = train(name, count)
        for a, b in zip(sharded, whole, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)


# Every model fits arrays (batches of no static size, the last, of 1, smaller
# than the shard count) in two shards; TensorFlow's warnings are shown.
_FIT_ARRAYS_IN_SHARDS = """
import numpy as np
from test_base_autoencoder import MODELS
from test_case import mnist

for name, build in sorted(MODELS.items()):
    model = build()
    model.compile(optimizer="adam", batch_shards=2)
    conditioned = getattr(model, "conditioned", False)
    batch = next(iter(mnist("train", limit=5, batch_size=5, value_range=model.value_range, labels=conditioned)))
    images, labels = (batch[0].numpy(), batch[1].numpy()) if conditioned else (batch.numpy(), None)
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    print(name, np.isfinite(history.history["loss"][-1]))
"""


def test_shards_train_batches_of_no_static_size_without_a_type_inference_warning():
    # The earlier small-batch fallback, a `tf.cond`, made TensorFlow log
    # "Type inference failed" and a many-line dump for the conv,
    # contractive, IWAE and VQ-VAE models.
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    result = subprocess.run(
        [sys.executable, "-c", _FIT_ARRAYS_IN_SHARDS],
        cwd=Path(__file__).parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [word for name in sorted(MODELS) for word in (name, "True")]
    assert "Type inference failed" not in result.stderr


def test_shards_train_colour_images_as_the_whole_batch(rgb_crops_folder):
    # 32x32x3 crops of scikit-learn's photographs: a dense VAE, which shards
    # by default, and a conv model with its three-channel output. The VAE's
    # loss sums 3,072 pixels, so SGD takes a smaller step than on MNIST.
    builds = {
        "vae": lambda: VAE(latent_dim=4, hidden_dims=(32,), image_shape=(32, 32, 3), seed=3),
        "conv": lambda: ConvAutoencoder(filters=(8, 4), image_shape=(32, 32, 3), value_range=(0, 1)),
    }
    for name, build in builds.items():
        keras.utils.set_random_seed(0)
        initial = build().get_weights()
        whole = train(name, 1, build, rgb_crops_folder, learning_rate=1e-4)
        assert any(not np.allclose(w, w0) for w, w0 in zip(whole, initial, strict=True))
        for a, b in zip(train(name, 2, build, rgb_crops_folder, learning_rate=1e-4), whole, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)


def _op_count(model, op_type):
    step = tf.function(model.train_step).get_concrete_function(tf.TensorSpec([256, *model.image_shape]))
    return sum(op.type == op_type for op in step.graph.get_operations())


def test_each_shard_is_its_own_forward_and_backward_pass():
    counts = {}
    for count in (1, 2, 3):
        model = DenseAutoencoder(latent_dim=8)
        model.compile(optimizer="adam", batch_shards=count)
        counts[count] = _op_count(model, "MatMul")
    assert counts[1] > 0 and counts[2] == 2 * counts[1] and counts[3] == 3 * counts[1]


class _DenoisingInShards(DenoisingAutoencoder):
    trains_in_shards = True


def test_the_models_measured_faster_in_shards_default_to_one_shard_per_core():
    per_core = shards.default_count(distributed=False, jit_compile=False)
    assert per_core == min(shards.MAX_DEFAULT_SHARDS, len(os.sched_getaffinity(0)))
    narrow, wide, conv = (
        (lambda: DenseAutoencoder(latent_dim=8)),
        (lambda: DenseAutoencoder(latent_dim=500)),
        (lambda: ConvAutoencoder(filters=(8, 4))),
    )
    for build, expected in [
        (lambda: VAE(latent_dim=4, hidden_dims=(32,)), per_core),
        (lambda: IWAE(num_samples=2, latent_dim=4, hidden_dims=(32,)), per_core),
        (lambda: VAE(architecture="conv", latent_dim=4, filters=(4, 4)), per_core),
        (lambda: VQVAE(filters=(4,), embedding_dim=2, num_embeddings=4), 1),  # see its codebook_usage
        (narrow, per_core),
        (lambda: DenseAutoencoder(latent_dim=8, hidden_dims=(32,)), 1),
        (wide, 1),
        (conv, per_core),
        (lambda: ConvAutoencoder(filters=(8, 4), downsampling="strided"), per_core),
        # Wrapped models shard as the model they wrap does; the contractive one over dense models only.
        (lambda: DenoisingAutoencoder(narrow()), per_core),
        (lambda: DenoisingAutoencoder(wide()), 1),
        (lambda: DenoisingAutoencoder(conv()), per_core),
        (lambda: ContractiveAutoencoder(narrow()), per_core),
        (lambda: ContractiveAutoencoder(wide()), 1),
        (lambda: ContractiveAutoencoder(conv()), 1),
        (lambda: _DenoisingInShards(wide()), per_core),  # a subclass's own choice stands
    ]:
        model = build()
        model.compile(optimizer="adam")
        assert model.batch_shards == expected, type(model).__name__
        model.compile(optimizer="adam", jit_compile=True)  # XLA compiles one program
        assert model.batch_shards == 1
    assert shards.default_count(distributed=True, jit_compile=False) == 1


@pytest.mark.parametrize("count", [0, -2, 1.5, True, "2"])
def test_a_bad_shard_count_is_refused_in_one_line(count):
    with pytest.raises(ValueError, match=f"batch_shards must be a positive whole number, got {count!r}"):
        DenseAutoencoder(latent_dim=8).compile(optimizer="adam", batch_shards=count)
