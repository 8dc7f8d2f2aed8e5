"""TensorFlow Datasets, read offline from a prepared data folder.

A data set is downloaded only where the network answers within seconds; a
machine without one gets a clear error at once instead of minutes of
retries, and nothing is written.
"""

import socket
import threading

import numpy as np

from aekeras.errors import DataError, first_line

_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def network_reachable(timeout=3.0):
    """Whether TFDS's download host answers within `timeout` seconds.

    Run in a thread, since a name lookup can ignore socket timeouts.
    """
    answered = threading.Event()

    def connect():
        try:
            socket.create_connection(_DOWNLOAD_HOST, timeout=timeout).close()
            answered.set()
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return answered.is_set()


def tfds_builder(name, data_dir):
    """The TFDS builder of `name`, prepared (downloading only with a network).

    Raises:
        DataError: for an unknown name, or one that is not prepared in
            `data_dir` where no network can prepare it.
    """
    import tensorflow_datasets as tfds

    where = data_dir or "the TFDS data folder (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # TFDS raises several types for unknown or broken names
        raise DataError(f"tfds:{name}: no such TFDS data set ({first_line(e, type(e).__name__)})") from None
    if builder.is_prepared():
        return builder
    if not network_reachable():
        raise DataError(
            f"tfds:{name}: not prepared in {where}, and there is no network to download it "
            "(prepare it with `tfds build` where there is one, then copy its folder or pass --data-dir)"
        )
    builder.download_and_prepare()
    return builder


def image_and_label_keys(builder):
    """The names of the image feature and of the class-label feature (or None)."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    supervised = builder.info.supervised_keys
    if supervised and isinstance(features[supervised[0]], tfds.features.Image):
        label = supervised[1] if isinstance(features[supervised[1]], tfds.features.ClassLabel) else None
        return supervised[0], label
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if not images:
        raise DataError(f"tfds:{builder.name}: has no image feature (features: {sorted(features)})")
    return images[0], labels[0] if labels else None


def read_tfds_split(builder, split, channels, image_size):
    """A split's images, converted as they are read, and labels, in memory.

    Returns:
        `(images, labels)`: uint8 `[n, h, w, channels]` and int64 `[n]` (or None).
    """
    import tensorflow as tf

    from aekeras.data.examples import convert_image

    image_key, label_key = image_and_label_keys(builder)
    dataset = builder.as_dataset(split=split).map(
        lambda example: (
            convert_image(example[image_key], channels, image_size),
            example[label_key] if label_key else tf.constant(0, tf.int64),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    images, labels = [], []
    for image_batch, label_batch in dataset.batch(1024):
        images.append(image_batch.numpy())
        labels.append(label_batch.numpy())
    if not images:
        raise DataError(f"tfds:{builder.name}: split {split!r} is empty")
    return np.concatenate(images), np.concatenate(labels).astype(np.int64) if label_key else None
