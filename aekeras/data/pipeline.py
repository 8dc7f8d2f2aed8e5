"""`tf.data` pipelines over a source's examples."""

import math
import os

import numpy as np
import tensorflow as tf

from aekeras.data.examples import decode_batch
from aekeras.data.spec import UNIT_RANGE, VALUE_RANGES, to_model_scale
from aekeras.errors import DataError

# uint8 pixels are `value * UINT8_STEP` on the unit scale, the step held
# in float32 so that NumPy, TensorFlow and the pipeline's one-pass
# conversion (`scaled_batch`) give the same bits.
UINT8_STEP = np.float32(1) / np.float32(255)
SCALING_CHUNK = 4096  # float images scaled at once when building their table
# In-memory images are gathered up to this many batches at a time, within
# GATHER_BYTES, and each batch served as a slice of that gather, not a copy:
# the dense model's `fit` took 8% more processor time a step with a gather
# per batch (README, "Speed"). Files are decoded a batch at a time.
MAX_BATCHES_PER_GATHER = 32
GATHER_BYTES = 8 << 20
# Gathers, or batch decodes, at once, which the parallel map also keeps
# ready ahead of the training step: fixed, because tf.data's autotuner is
# off (`make_dataset`). Four gathers of 10 MNIST batches delivered 7% more
# images than two of 20 (README, "Speed"). Decodes: at least one per core,
# and eight batches in flight delivered 13% more MNIST batches than two and
# a prefetch of two when each was gathered alone. All within the bytes
# below, and at least two.
PARALLEL_GATHERS = 4
PARALLEL_BATCHES = max(8, os.cpu_count() or 1)
IN_FLIGHT_BYTES = 64 << 20


def unit_scale(images):
    """uint8 0-255 images as float32 on [0, 1] (numpy or tensors); others returned as they are.

    Float images are taken to be on [0, 1] already and come back unchanged
    (float64 stays float64, nothing is checked); so do other dtypes.
    """
    if images.dtype == np.uint8 or images.dtype == tf.uint8:
        if isinstance(images, np.ndarray):
            return images.astype(np.float32) * UINT8_STEP
        return tf.cast(images, tf.float32) * UINT8_STEP
    return images


# Float images above it are taken for 0-255 pixels: every scale aekeras
# models compute on tops at 1, but inputs a user corrupts for a denoising
# fit stray above it (a dropout mask at rate p scales kept values by
# 1 / (1 - p): 2 for the lecture's 0.5, 10 at 0.9), while a batch of 0-255
# pixels whose brightest is under 10 is all but black.
PIXEL_LIKE = 10.0


def check_image_values(images, value_range, taker):
    """Raises ValueError where float NumPy `images` hold NaN or infinite values, or look like 0-255 pixels.

    Pixels look like 0-255 ones above `PIXEL_LIKE`. Anything else (uint8
    pixels, tensors, datasets, an empty array) passes. `taker` names what
    takes them, to begin the message.
    """
    if not (isinstance(images, np.ndarray) and images.dtype.kind == "f" and images.size):
        return
    # Two reductions, no temporary: NaN propagates through both, and an
    # infinity is the highest or the lowest value.
    high, low = float(np.max(images)), float(np.min(images))
    if not (math.isfinite(high) and math.isfinite(low)):
        rows = np.reshape(images, (len(images), -1)) if images.ndim > 1 else np.reshape(images, (-1, 1))
        bad = int(np.count_nonzero(~np.isfinite(rows).all(axis=1)))
        raise ValueError(
            f"{taker} finite float images on {list(value_range)}; got NaN or infinite values in {bad} of "
            f"{len(rows)} images"
        )
    if high > PIXEL_LIKE:
        raise ValueError(
            f"{taker} float images on {list(value_range)}; got values up to {high:g}, as 0-255 pixels have "
            "(pass those as uint8, which it scales itself)"
        )


def check_limit(limit):
    if limit is not None and not (isinstance(limit, (int, np.integer)) and limit > 0):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")


def _check(batch_size, limit, value_range):
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    check_limit(limit)
    value_range = tuple(float(v) for v in value_range)
    if value_range not in VALUE_RANGES:
        raise DataError(f"value_range {value_range} is not supported (expected one of {VALUE_RANGES})")
    return value_range


def index_batches(count, batch_size, shuffle, seed, drop_remainder, batches_per_element=1):
    """Example indices: in order, or a new seeded permutation every epoch, in batches.

    Each element holds the indices of `batches_per_element` whole batches,
    flat; the epoch's last element holds what remains: whole batches and
    the short last batch (unless `drop_remainder`). Each epoch's order is
    drawn in one op (`stateless_shuffle`, seeded by a fresh draw of
    `Dataset.random` per iteration), not example by example: a per-element
    shuffle buffer alone delivers fewer batches per second than small models
    train on. The order is split by `rebatch`, not in a function of its own:
    every epoch's iterator instantiates each function afresh, at a cost
    that grows with the function's nodes.
    """
    kept = kept_examples(count, batch_size, drop_remainder)
    step = batch_size * batches_per_element

    def epoch_order(epoch_seed, example_count):
        order = tf.range(example_count)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                order, seed=tf.stack([tf.constant(seed, tf.int64), epoch_seed])
            )
        # Of unknown length to `rebatch`, so that batches are `[None, ...]`
        # whatever the count (unless `drop_remainder`), as `Dataset.batch` gives.
        return tf.raw_ops.PlaceholderWithDefault(input=order[:kept], shape=[None])

    if shuffle:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    else:
        seeds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    # The count enters as an element, not a constant: the constant range
    # would be folded afresh at every iterator's start.
    counts = tf.data.Dataset.from_tensors(tf.constant(count, tf.int64))
    elements = tf.data.Dataset.zip(seeds, counts).map(epoch_order).rebatch(step)
    # Keras needs the count to end each epoch without a "ran out of data"
    # warning when several steps run per call.
    return elements.apply(tf.data.experimental.assert_cardinality(-(-kept // step)))


def image_table(images, value_range):
    """The tensor in-memory batches are gathered from: uint8 images as they are, float ones at `value_range`.

    A uint8 table is a quarter of float32's bytes, and each gather is then
    scaled in one pass (`scaled_batch`): the gathers read a quarter of the
    bytes, which delivered more MNIST images a second than gathering from a
    table scaled to float32 once, and `aekeras train dense` peaked 130 MiB
    lower (README, "Speed"). Float images are scaled once, with the ops a
    batch would use.
    """
    if images.dtype == np.uint8:
        return tf.constant(images)
    # Scaled a chunk at a time into one buffer that TensorFlow takes over
    # without a copy: scaling the whole table at once held two more float32
    # copies of it at the peak.
    table = _aligned_float32(images.shape)
    for start in range(0, len(images), SCALING_CHUNK):
        chunk = tf.constant(images[start : start + SCALING_CHUNK])
        table[start : start + SCALING_CHUNK] = scaled_batch(chunk, value_range).numpy()
    return tf.experimental.dlpack.from_dlpack(table.__dlpack__())


def _aligned_float32(shape):
    """An empty float32 array on a 64-byte boundary, as TensorFlow needs to share (not copy) it."""
    size = int(np.prod(shape)) * 4
    buffer = np.empty(size + 64, np.uint8)
    offset = -buffer.ctypes.data % 64
    return buffer[offset : offset + size].view(np.float32).reshape(shape)


def scaled_batch(images, value_range):
    """A batch of uint8 or [0, 1] float images (tensors) as float32 at `value_range`."""
    if images.dtype == tf.uint8:
        # One pass instead of a cast and two arithmetic ops, with the same
        # bits: Dequantize computes `value * ((high - low) / 255) + low`,
        # and `high - low` (1 or 2) scales `UINT8_STEP` exactly (tests
        # compare every value for every value range).
        low, high = value_range
        pixels = tf.bitcast(images, tf.quint8)
        return tf.raw_ops.Dequantize(input=pixels, min_range=low, max_range=high, mode="MIN_COMBINED")
    return to_model_scale(unit_scale(images), value_range)


def make_dataset(
    examples,
    spec,
    *,
    batch_size=256,
    shuffle=False,
    seed=0,
    value_range=UNIT_RANGE,
    flatten=False,
    labels=False,
    drop_remainder=None,
    limit=None,
    keep_uint8=False,
):
    """A batched, prefetched `tf.data.Dataset` of float32 images at `value_range` (`keep_uint8`: 8-bit ones as stored).

    Examples in memory are gathered by index, many batches at a time, each
    batch then a slice of the gather; files are decoded in parallel, a batch
    at a time, in order. Both follow `index_batches`, so both give the same
    batches.

    A shuffled pipeline drops its short last batch unless told (`drops_remainder_by_default`).

    Args:
        examples: a split's `Examples`, at the spec's shape.
        spec: the source's `ImageSpec`.
        batch_size, shuffle, seed, value_range, flatten, labels,
            drop_remainder, limit, keep_uint8: see `aekeras.data.load`.
    """
    value_range = _check(batch_size, limit, value_range)
    if limit is not None:
        examples = examples.subset(np.arange(min(limit, len(examples))))
    if drop_remainder is None:
        drop_remainder = drops_remainder_by_default(shuffle, len(examples), batch_size)
    if labels and examples.labels is None:
        raise DataError(f"{spec.source}: has no labels (labels=True needs a labelled source)")
    in_memory = examples.files is None
    per_gather = batches_per_gather(batch_size, spec) if in_memory else 1
    dataset = index_batches(len(examples), batch_size, shuffle, seed, drop_remainder, per_gather)
    images_of = _image_rows(examples, spec, value_range)
    label_table = tf.constant(examples.labels) if labels else None

    def rows_of(indices):
        """The images (and labels) of `indices`: one gather or one batch's decode."""
        images = images_of(indices)
        if images.dtype == tf.uint8 and not keep_uint8:  # float tables are at value_range already
            images = scaled_batch(images, value_range)
        images = tf.reshape(images, (-1, spec.size)) if flatten else images
        return (images, tf.gather(label_table, indices)) if labels else images

    in_flight = batches_in_flight(batch_size, spec, per_gather)
    dataset = dataset.map(rows_of, num_parallel_calls=in_flight, deterministic=True)
    # Each batch is a slice of its gather, which `rebatch` hands on without
    # copying where the slice keeps TensorFlow's 64-byte alignment (batches
    # of a multiple of 16 images).
    dataset = dataset.rebatch(batch_size, drop_remainder=drop_remainder)
    count = -(-kept_examples(len(examples), batch_size, drop_remainder) // batch_size)
    return dataset.apply(tf.data.experimental.assert_cardinality(count)).with_options(_options())


def _image_rows(examples, spec, value_range):
    """The images of a batch's indices, as a function: a gather from the table in memory, or the files decoded."""
    if examples.files is None:
        table = image_table(examples.images, value_range)
        return lambda indices: tf.gather(table, indices)
    files = tf.constant(examples.files)
    return lambda indices: decode_batch(tf.gather(files, indices), spec, examples.resize)


def kept_examples(count, batch_size, drop_remainder):
    """How many of `count` examples an epoch serves: every one, or with `drop_remainder` its whole batches'."""
    return count // batch_size * batch_size if drop_remainder else count


def drops_remainder_by_default(shuffle, count, batch_size):
    """Whether a pipeline leaves out its short last batch unless told: shuffled, with a whole batch.

    Batches of one static size let TensorFlow fold a training step's shape
    arithmetic (the loss gradient's broadcasts, the batch shards' split):
    the lecture's dense model trained 1.3x as fast on MNIST (README, "Speed").
    The order is redrawn every epoch, so the examples left out change; an
    unshuffled pipeline (a test split) keeps every example.
    """
    return bool(shuffle) and count >= batch_size


def _options():
    """tf.data's options for every pipeline: its graph rewrites and its autotuner off, sharded by batch."""
    # tf.data's default graph rewrites copy the captured table when each
    # iterator starts (a second 188 MB for MNIST) and win nothing here: the
    # pipeline is already parallel and prefetched.
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    # Keras drops each epoch's iterator unfinished (it knows the count);
    # with the autotuner on, that held `fit` for about 140 ms at one call in
    # three (the lecture's epoch on one thread takes 170 ms).
    options.autotune.enabled = False
    # Under a `tf.distribute` strategy, each global batch is split, replica
    # (or worker) i taking slice i: the single device's examples, with
    # `draw_for_global_batch` its random draws too. The default policy's
    # rewrite broke the gathered batches' sizes under a one-replica strategy.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _batch_bytes(batch_size, spec):
    return batch_size * spec.size * 4  # float32, as delivered


def batches_per_gather(batch_size, spec):
    """How many batches one gather of an in-memory table makes: `MAX_BATCHES_PER_GATHER` within `GATHER_BYTES`."""
    return max(1, min(MAX_BATCHES_PER_GATHER, GATHER_BYTES // _batch_bytes(batch_size, spec)))


def batches_in_flight(batch_size, spec, per_gather=1):
    """How many gathers (of `per_gather` batches each) or batch decodes the pipeline runs at once.

    `PARALLEL_GATHERS` gathers of several batches, else `PARALLEL_BATCHES`,
    within `IN_FLIGHT_BYTES`, and at least two.
    """
    wanted = PARALLEL_GATHERS if per_gather > 1 else PARALLEL_BATCHES
    return max(2, min(wanted, IN_FLIGHT_BYTES // (per_gather * _batch_bytes(batch_size, spec))))
