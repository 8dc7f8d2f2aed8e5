"""Batch shards train as the whole batch does, for every model; the step really holds one subgraph per shard."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_base_autoencoder import MODELS
from test_case import mnist

from aekeras.models import IWAE, VAE, ConvAutoencoder, DenseAutoencoder, shards


def train(name, batch_shards):
    """Two epochs of batches of 128, 128 and 1 (257 images), four steps per call, from seed 0.

    SGD, not Adam: a gradient scaled wrongly would leave Adam's update
    almost as it is, and SGD's not at all.
    """
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    model.compile(optimizer=keras.optimizers.SGD(0.01), batch_shards=batch_shards, steps_per_execution=4)
    labelled = getattr(model, "conditioned", False)
    batches = mnist("train", limit=257, batch_size=128, value_range=model.value_range, labels=labelled)
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


def test_the_dense_vaes_default_to_one_shard_per_core_and_the_rest_to_one():
    per_core = shards.default_count(distributed=False, jit_compile=False)
    assert per_core == min(shards.MAX_DEFAULT_SHARDS, len(os.sched_getaffinity(0)))
    for build, expected in [
        (lambda: VAE(latent_dim=4, hidden_dims=(32,)), per_core),
        (lambda: IWAE(num_samples=2, latent_dim=4, hidden_dims=(32,)), per_core),
        (lambda: VAE(architecture="conv", latent_dim=4, filters=(4, 4)), 1),
        (lambda: DenseAutoencoder(latent_dim=8), 1),
        (lambda: ConvAutoencoder(filters=(8, 4)), 1),
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
