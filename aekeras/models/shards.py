"""Batch shards: a training step's batch split so that a CPU's cores train its parts side by side.

A small model's ops (a 256 x 784 by 784 x 30 matmul, say) are too small to
gain from several threads each, so one op at a time leaves the other cores
idle. Split into shards, the batch's forward and backward passes become
independent subgraphs that TensorFlow's executor runs at once, one per
core, and the gradient sums them. The loss is the same per-example
average over the whole batch, so the update is the whole batch's, and
every random draw is made once for the whole batch and sliced
(`draw_for_global_batch`): each example gets the same noise however the
batch is split, so a sharded step trains as the unsharded one does.
`compile` shards by default only the models whose `trains_in_shards` says
so, where the benchmark's race measured a gain.
"""

import contextlib
import os
import threading

import keras
import tensorflow as tf

# A default above this many shards is unmeasured (the development machine
# has 2 cores) and traces that many copies of the step.
MAX_DEFAULT_SHARDS = 8

# Per thread: a `tf.distribute` strategy traces each replica's step in a
# thread of its own, and each replica splits its own batch.
_tracing = threading.local()


def default_count(distributed, jit_compile):
    """The shards `compile` gives a model that trains in shards, unless told: one per core on a CPU, else 1.

    A `tf.distribute` strategy already splits the batch between its
    replicas, a GPU's ops each fill the device already, and XLA compiles
    the step into one program that runs on its own threads.
    """
    if distributed or jit_compile or tf.config.list_logical_devices("GPU"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_SHARDS, cores))


def check_count(count):
    """`count`, or ValueError if it is not a positive whole number."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"batch_shards must be a positive whole number, got {count!r}")
    return count


class _ShardDraws:
    """The random draws of a step being traced in shards: the first shard's, for the whole batch."""

    def __init__(self, starts, total):
        self.starts = starts  # each shard's first example within the batch
        self.total = total  # the batch's size
        self.shard = 0
        self.draws = []  # the first shard's, in the order it made them
        self.next_draw = 0

    def begin(self, shard):
        self.shard, self.next_draw = shard, 0

    def whole_batch(self, draw):
        """This shard's next draw for the whole batch: the first shard makes it (`draw()`), the others reuse it."""
        if self.shard == 0:
            self.draws.append(draw())
            return self.draws[-1]
        values = self.draws[self.next_draw]
        self.next_draw += 1
        return values


def draw_for_global_batch(distribution, shape, seed_generator):
    """Draws `"uniform"` or `"normal"` values of `shape` for this replica's batch, or this shard's.

    Under a `tf.distribute` strategy every replica draws values for the whole
    global batch from the same seed state and keeps its own contiguous slice;
    in a sharded step the first shard draws for the whole batch and every
    shard keeps its slice. So each example gets the same noise however the
    batch is split: two replicas, or two shards, train exactly as one device
    does.
    """
    random = keras.random.normal if distribution == "normal" else keras.random.uniform
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    sharded = getattr(_tracing, "draws", None)
    if replicas == 1 and sharded is None:
        return random(shape, seed=seed_generator)
    local = shape[0]
    whole = local if sharded is None else sharded.total
    start = 0 if sharded is None else sharded.starts[sharded.shard]
    if replicas > 1:
        start += context.replica_id_in_sync_group * whole
        whole *= replicas

    def draw():
        return random((whole, *shape[1:]), seed=seed_generator)

    values = draw() if sharded is None else sharded.whole_batch(draw)
    return values[start : start + local]


def split(structure, count):
    """`(parts, starts, total, examples)`: `structure`'s tensors split along their first axis into `count` parts.

    The parts differ in size by at most one example (the first ones get the
    extra). A batch of no static size may hold fewer than `count` examples
    (the short last batch of `fit` on arrays): it is first padded to
    `count` with repeats of its own examples, and its `examples` come
    first, so the caller keeps the first `examples` results and drops the
    padding's. `total` counts the padding. A tensor that appears twice in
    `structure` (targets that are the inputs) is split once, and its parts
    appear twice: models tell autoencoding from given targets by that
    identity.
    """
    tensors = tf.nest.flatten(structure)
    examples = tf.shape(tensors[0])[0]
    static = tensors[0].shape[0]
    total = examples if static is not None else tf.maximum(examples, count)
    sizes = total // count + tf.cast(tf.range(count) < total % count, tf.int32)
    starts = tf.concat([[0], tf.cumsum(sizes)[:-1]], axis=0)
    pieces = {}
    for tensor in tensors:
        if id(tensor) not in pieces:
            padded = tensor if static is not None else _padded(tensor, examples, total)
            pieces[id(tensor)] = tf.split(padded, sizes, num=count)
    parts = [tf.nest.pack_sequence_as(structure, [pieces[id(t)][i] for t in tensors]) for i in range(count)]
    return parts, [starts[i] for i in range(count)], total, examples


def _padded(tensor, examples, total):
    """`tensor`'s `examples` rows repeated to `total` rows (as they are, where `total` is `examples`).

    A repeat and a slice rather than a `tf.cond` that trains a small batch
    whole: TensorFlow types a `tf.cond`'s gradient from both branches'
    intermediate tensors, and any that differ in type between the sharded
    and the whole-batch branch (a boolean mask, an index) make it log a
    many-line type-inference warning. Where nothing is to be repeated, the
    tile's multiples are all 1 and the slice takes every row.
    """
    repeats = (total + examples - 1) // tf.maximum(examples, 1)
    multiples = tf.concat([[repeats], tf.ones([tf.rank(tensor) - 1], tf.int32)], axis=0)
    return tf.tile(tensor, multiples)[:total]


@contextlib.contextmanager
def shard_draws(starts, total):
    """While tracing a step's shards: `draw_for_global_batch` draws for the whole batch once."""
    _tracing.draws = _ShardDraws(starts, total)
    try:
        yield _tracing.draws
    finally:
        _tracing.draws = None
