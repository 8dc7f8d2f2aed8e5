"""`tf.data` pipelines over a source's examples."""

import numpy as np
import tensorflow as tf

from aekeras.data.examples import decode_file
from aekeras.data.spec import UNIT_RANGE, VALUE_RANGES, to_model_scale
from aekeras.errors import DataError


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

    Examples in memory are shuffled as indices and gathered a batch at a
    time; files are shuffled as paths and decoded in parallel, in order.

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
    count = len(examples)
    dataset = tf.data.Dataset.range(count)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    label_table = tf.constant(examples.labels) if labels else None

    def scale(images):
        images = to_model_scale(unit_scale(images), value_range)
        return tf.reshape(images, (-1, spec.size)) if flatten else images

    if examples.files is not None:
        files = tf.constant(examples.files)
        size, channels = spec.shape[:2], spec.channels
        decode = lambda i: decode_file(tf.gather(files, i), channels, size)  # noqa: E731
        dataset = dataset.map(
            lambda i: (decode(i), i), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        ).batch(batch_size, drop_remainder=drop_remainder)
        batches = lambda images, i: (scale(images), i)  # noqa: E731
    else:
        table = tf.constant(examples.images)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        batches = lambda i: (scale(tf.gather(table, i)), i)  # noqa: E731

    def finish(*batch):
        images, indices = batches(*batch)
        return (images, tf.gather(label_table, indices)) if labels else images

    dataset = dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
