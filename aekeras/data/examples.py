"""One split of a data set, in memory or as image files to decode when read."""

import dataclasses
import re

import numpy as np
import tensorflow as tf

from aekeras.errors import DataError

# The test split of a source that has none is a fixed, seeded share of its
# training examples: the same images on every run, whatever --seed says.
HOLDOUT_SEED = 0
# What a file decoded at another size than its folder's scan found fails
# with (`decode_file`); "decoded" lets `naming_undecodable_files` name it.
SIZE_CHANGED = "a decoded image differs in size from its folder's images"


@dataclasses.dataclass
class Examples:
    """The examples of one split.

    Exactly one of `images` and `files` is set.

    Attributes:
        images: `[n, height, width, channels]`, uint8 (0-255) or float32
            (on [0, 1]).
        files: `[n]` paths of image files, decoded as they are read.
        labels: `[n]` int64 labels, or `None`.
        resize: whether files of another size than the spec's are resized
            to it (`--image-size`); else such a file is refused when read
            (`decode_file`), for the folder's scan found none.
    """

    images: np.ndarray = None
    files: np.ndarray = None
    labels: np.ndarray = None
    resize: bool = True

    def __len__(self):
        return len(self.images if self.images is not None else self.files)

    def subset(self, indices):
        """The examples at `indices`, in that order."""
        pick = lambda a: None if a is None else a[indices]  # noqa: E731
        return Examples(pick(self.images), pick(self.files), pick(self.labels), self.resize)

    def nbytes(self, shape):
        """Bytes the images take in memory once decoded at `shape` as uint8."""
        per_image = int(np.prod(shape)) * (4 if self.is_float else 1)
        return len(self) * per_image

    @property
    def is_float(self):
        return self.images is not None and self.images.dtype != np.uint8


def holdout(examples, split, fraction, where):
    """The `split` of examples that have no test split of their own.

    A fixed, seeded `fraction` (at least one example) is the test split;
    the rest, in the same seeded order, is the training split.
    """
    n = len(examples)
    if not 0 < fraction < 1:
        raise DataError(f"test_fraction must be between 0 and 1, got {fraction!r}")
    n_test = max(1, int(round(n * fraction)))
    if n - n_test < 1:
        raise DataError(
            f"{where}: {n} examples are too few to hold out a test split of {fraction:g} (need at least 2)"
        )
    order = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    return examples.subset(order[:n_test] if split == "test" else order[n_test:])


def convert_image(image, channels, image_size):
    """Brings a decoded image `[h, w, c]` (or a batch of them) to `channels` and `image_size`.

    Alpha is dropped (2 -> 1 and 4 -> 3 channels); grey becomes RGB by
    repetition and RGB becomes grey by the ITU-R 601 luma weights; a resize
    is bilinear with antialiasing. uint8 stays uint8 (rounded), float32
    stays float32.
    """
    dtype = image.dtype
    count = tf.shape(image)[-1]
    image = image[..., : count - 1 + count % 2]
    if channels == 3:
        image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.repeat(image, 3, axis=-1), lambda: image)
    elif channels == 1:
        weights = tf.constant([0.2989, 0.587, 0.114], tf.float32)

        def to_grey():
            grey = tf.reduce_sum(tf.cast(image, tf.float32) * weights, axis=-1, keepdims=True)
            return tf.cast(tf.round(grey), dtype) if dtype == tf.uint8 else grey

        image = tf.cond(tf.shape(image)[-1] == 3, to_grey, lambda: image)
    if image_size is not None:
        # Most files already have the size: skipping the resize (an identity
        # there) makes decoding a folder several times faster.
        image = tf.cond(
            tf.reduce_all(tf.shape(image)[-3:-1] == image_size),
            lambda: image,
            lambda: _resize(image, image_size),
        )
    return image


def _resize(image, image_size):
    resized = tf.image.resize(tf.cast(image, tf.float32), image_size, antialias=True)
    if image.dtype == tf.uint8:
        return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)
    return resized


def decode_file(path, channels, image_size, resize=True):
    """Decodes a PNG, JPEG, BMP, GIF or WebP file (first frame) to uint8 `[h, w, channels]`.

    JPEGs are decoded with the accurate integer transform, as Pillow and
    libjpeg's own default decode them: TensorFlow's default fast one moved
    pixels by up to 13 levels from what a client decoding with Pillow sends.
    `resize=False`: a file not of `image_size` fails in an
    `InvalidArgumentError` saying `SIZE_CHANGED` (the file changed since
    its folder was scanned at one size) rather than being resized.
    """
    contents = tf.io.read_file(path)
    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=0, expand_animations=False),
    )
    if not resize and image_size is not None:
        same_size = tf.debugging.assert_equal(tf.shape(image)[:2], image_size, message=SIZE_CHANGED)
        with tf.control_dependencies([same_size]):
            image = tf.identity(image)
    # Not resized: the size check above stands in for convert_image's resize, which it would never take.
    image = convert_image(image, channels, image_size if resize else None)
    return tf.ensure_shape(image, (*(image_size or (None, None)), channels))


def decoder_reason(error):
    """What TensorFlow's decoder said, without its op and function names."""
    reason = error.message.strip().splitlines()[-1]
    reason = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", reason)
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", reason)


def decode_batch(paths, spec, resize=True):
    """Decodes a batch of files to uint8 `[n, *spec.shape]` (`resize`: see `decode_file`).

    One `map_fn` per batch rather than a `tf.data` map per file: the
    per-element work of `tf.data` cost more than decoding small images.
    """
    size, channels = spec.shape[:2], spec.channels
    return tf.map_fn(
        lambda path: decode_file(path, channels, size, resize),
        paths,
        fn_output_signature=tf.TensorSpec((*spec.shape,), tf.uint8),
    )


def convert_arrays(images, channels, image_size, chunk=1024):
    """`convert_image` over a whole array, in chunks to bound memory."""
    size = tuple(image_size) if image_size is not None else None
    if images.shape[-1] == channels and (size is None or images.shape[1:3] == size):
        return images
    parts = [
        convert_image(tf.constant(images[i : i + chunk]), channels, size).numpy()
        for i in range(0, len(images), chunk)
    ]
    return np.concatenate(parts) if parts else images[:, :0]
