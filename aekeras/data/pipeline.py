"""`tf.data` pipelines over a source's examples."""

import os

import numpy as np
import tensorflow as tf

from aekeras.data.examples import decode_batch
from aekeras.data.spec import UNIT_RANGE, VALUE_RANGES, to_model_scale
from aekeras.errors import DataError

# In-memory images are scaled once, when the table fits in this many bytes
# as float32; larger ones are scaled a batch at a time.
PRESCALED_TABLE_BYTES = 1 << 30
SCALING_CHUNK = 4096  # images scaled at once when building such a table
# Batches gathered or decoded at once, which the parallel map also keeps
# ready ahead of the training step: fixed, because tf.data's autotuner is off
# (`make_dataset`). Eight in flight delivered 13% more MNIST batches than two
# and a prefetch of two (README, "Speed"); at least one per core for
# decoding, at most what fits in the bytes below, at least two.
PARALLEL_BATCHES = max(8, os.cpu_count() or 1)
IN_FLIGHT_BYTES = 64 << 20


def unit_scale(images):
    """uint8 0-255 or float [0, 1] images as float32 on [0, 1] (numpy or tensors)."""
    if images.dtype == np.uint8 or images.dtype == tf.uint8:
        if isinstance(images, np.ndarray):
            return images.astype(np.float32) / np.float32(255)
        return tf.cast(images, tf.float32) / 255.0
    return images


def _check(batch_size, limit, value_range):
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    if limit is not None and not (isinstance(limit, (int, np.integer)) and limit > 0):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")
    value_range = tuple(float(v) for v in value_range)
    if value_range not in VALUE_RANGES:
        raise DataError(f"value_range {value_range} is not supported (expected one of {VALUE_RANGES})")
    return value_range


def index_batches(count, batch_size, shuffle, seed, drop_remainder):
    """Batches of example indices: in order, or a new seeded permutation every epoch.

    Each epoch's order is drawn in one op (`stateless_shuffle`, seeded by a
    fresh draw of `Dataset.random` per iteration), not example by example: a
    per-element shuffle buffer alone delivers fewer batches per second than
    small models train on.
    """
    full = count // batch_size * batch_size

    def epoch(epoch_seed):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                order, seed=tf.stack([tf.constant(seed, tf.int64), epoch_seed])
            )
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full], (-1, batch_size)))
        if full < count and not drop_remainder:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full:]))
        return batches

    if shuffle:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    else:
        seeds = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    # `flat_map` hides the count; Keras needs it to end each epoch without
    # a "ran out of data" warning when several steps run per call.
    batches = full // batch_size + (full < count and not drop_remainder)
    return seeds.flat_map(epoch).apply(tf.data.experimental.assert_cardinality(batches))


def image_table(images, value_range):
    """The tensor in-memory batches are gathered from: images already at `value_range` where it fits.

    Scaling the whole table once, with the same ops a batch would use (so
    the values are identical), leaves one gather per batch instead of a
    gather, a cast and the arithmetic: the pipeline's own per-batch work
    limited how fast it fed the small models. Above
    `PRESCALED_TABLE_BYTES` of float32 the table stays as stored, and
    `scaled_batch` scales each batch.
    """
    if images.dtype == np.uint8 and images.size * 4 > PRESCALED_TABLE_BYTES:
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
    """A batch of uint8 or [0, 1] float images as float32 at `value_range`."""
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
    drop_remainder=False,
    limit=None,
):
    """A batched, prefetched `tf.data.Dataset` of float32 images at `value_range`.

    Examples in memory are gathered a batch at a time by index; files are
    decoded in parallel, in order. Both follow `index_batches`, so both give
    the same batches.

    Args:
        examples: a split's `Examples`, at the spec's shape.
        spec: the source's `ImageSpec`.
        batch_size, shuffle, seed, value_range, flatten, labels,
            drop_remainder, limit: see `aekeras.data.load`.
    """
    value_range = _check(batch_size, limit, value_range)
    if limit is not None:
        examples = examples.subset(np.arange(min(limit, len(examples))))
    if labels and examples.labels is None:
        raise DataError(f"{spec.source}: has no labels (labels=True needs a labelled source)")
    dataset = index_batches(len(examples), batch_size, shuffle, seed, drop_remainder)
    label_table = tf.constant(examples.labels) if labels else None

    def images_of(indices):
        if examples.files is None:
            return tf.gather(table, indices)  # float32 at value_range already, unless too large
        return decode_batch(tf.gather(files, indices), spec)

    def batch_of(indices):
        if not drop_remainder:  # any batch size, as Dataset.batch's last batch may be
            indices = tf.raw_ops.PlaceholderWithDefault(input=indices, shape=[None])
        images = images_of(indices)
        images = images if images.dtype == tf.float32 else scaled_batch(images, value_range)
        images = tf.reshape(images, (-1, spec.size)) if flatten else images
        return (images, tf.gather(label_table, indices)) if labels else images

    table = image_table(examples.images, value_range) if examples.files is None else None
    files = tf.constant(examples.files) if examples.files is not None else None
    dataset = dataset.map(
        batch_of, num_parallel_calls=batches_in_flight(batch_size, spec), deterministic=True
    )
    return dataset.with_options(_options())


def _options():
    """tf.data's options for every pipeline: its graph rewrites and its autotuner off."""
    # tf.data's default graph rewrites copy the captured table when each
    # iterator starts (a second 188 MB for MNIST) and win nothing here: the
    # pipeline is already parallel and prefetched.
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    # Keras drops each epoch's iterator unfinished (it knows the count);
    # with the autotuner on, that held `fit` for about 140 ms at one call in
    # three (the lecture's epoch on one thread takes 170 ms).
    options.autotune.enabled = False
    return options


def batches_in_flight(batch_size, spec):
    """How many batches the pipeline gathers or decodes at once: `PARALLEL_BATCHES` within `IN_FLIGHT_BYTES`."""
    batch_bytes = batch_size * spec.size * 4  # float32, as delivered
    return max(2, min(PARALLEL_BATCHES, IN_FLIGHT_BYTES // batch_bytes))
