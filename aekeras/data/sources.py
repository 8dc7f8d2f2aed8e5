"""Where images come from: built-in names, `tfds:NAME`, folders and array files.

`open_source(source, ...)` reads the description of a data set (its
`ImageSpec`) and, on demand, the examples of its splits. Every kind of
source applies the same options: a resize, a channel conversion and, where
the source has no test split, a fixed held-out share.
"""

import contextlib
import dataclasses
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from aekeras.data import CHANNELS, TFDS_PREFIX, arrays, check_source, folder, tfds_source
from aekeras.data.builtin import BUILTIN
from aekeras.data.examples import Examples, convert_arrays, decode_batch, decode_file, decoder_reason, holdout
from aekeras.data.idx import idx_paths, read_idx_split
from aekeras.data.pipeline import check_limit
from aekeras.data.spec import ImageSpec
from aekeras.errors import DataError
from aekeras.progress import tracked

SPLITS = ("train", "test")


def default_memory_limit():
    """Bytes of decoded images kept in memory: a quarter of the RAM, at most 4 GiB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return min(ram // 4, 4 << 30)


def _size_pair(image_size):
    """`image_size` as a tuple: one number is a square, as `--image-size 32` is; () for what is neither."""
    if isinstance(image_size, (int, np.integer)):
        return (image_size, image_size)
    try:
        return () if isinstance(image_size, str) else tuple(image_size)
    except TypeError:  # not a sequence
        return ()


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How a source is read; the same for every kind of source.

    Args:
        data_dir: for built-in names, a folder of the four IDX files; for
            `tfds:` names, the TFDS data folder.
        image_size: `(height, width)` to resize every image to; needed when
            a folder's images differ in size.
        channels: 1 or 3 to convert to; by default the data's own (alpha
            dropped; a folder with any colour image gives 3).
        test_fraction: the share of the training examples held out as the
            test split, where a source has none (a fixed, seeded choice).
        memory_limit: folders whose decoded images take more bytes than this
            are decoded as they are read instead of once into memory.
    """

    data_dir: str = None
    image_size: tuple = None
    channels: int = None
    test_fraction: float = 0.1
    memory_limit: int = None

    def __post_init__(self):
        if self.image_size is not None:
            size = _size_pair(self.image_size)
            if len(size) != 2 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in size):
                raise DataError(f"image_size must be two positive integers, got {self.image_size!r}")
            object.__setattr__(self, "image_size", tuple(int(d) for d in size))
        if self.channels is not None and self.channels not in CHANNELS:
            raise DataError(f"channels must be 1 or 3, got {self.channels!r}")
        if not 0 < self.test_fraction < 1:
            raise DataError(f"test_fraction must be between 0 and 1, got {self.test_fraction!r}")


def _own_channels(stored):
    """The channels images stored with `stored` ones are read with by default: alpha dropped."""
    return 1 if stored in (1, 2) else 3


class Source:
    """A data set: its `spec` and the `examples` of its splits.

    Subclasses say what the data is natively (`_native`) and read a split
    (`_read`); this class applies the options and caches what was read.

    Args:
        location: the source's name or absolute path.
        options: its `ReadOptions`.
        verbose: whether reading image files shows its progress
            (`open_source`'s `verbose`).
    """

    def __init__(self, location, options, verbose=False):
        self.location = location
        self.options = options
        self.verbose = verbose
        self._native_splits = {}
        self._spec = None

    def _native(self):
        """`(size or None if it varies, channels, class_names, num_classes, splits)`."""
        raise NotImplementedError

    def _read(self, split):
        """The `Examples` of a split the source has, at its own size."""
        raise NotImplementedError

    @property
    def spec(self):
        """The `ImageSpec` of the examples, options applied, on the [0, 1] scale."""
        if self._spec is None:
            size, channels, class_names, num_classes, _ = self._native()
            size = self.options.image_size or size
            channels = self.options.channels or _own_channels(channels)
            self._spec = ImageSpec(
                (*size, channels),
                num_classes=num_classes,
                class_names=class_names,
                source=self.location,
            )
        return self._spec

    def _native_split(self, split):
        if split not in self._native_splits:
            self._native_splits[split] = self._read(split)
        return self._native_splits[split]

    def _selected(self, split):
        """A split's examples at the source's own size, test hold-out applied."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r} (expected one of {SPLITS})")
        if "test" in self._native()[4]:
            return self._native_split(split)
        return holdout(self._native_split("train"), split, self.options.test_fraction, self.location)

    def file_names_digest(self):
        """A digest of the files' names (`folder.names_digest`), for a source of files; else None."""
        return None

    def count(self, split, shard=None):
        """How many examples a split (or one worker's share of it) has, nothing decoded."""
        count = len(self._selected(split))
        return count if shard is None else count // shard[1]

    def examples(self, split, shard=None, limit=None):
        """A split's examples at the spec's shape: arrays, or files decoded when read.

        Args:
            split: `"train"` or `"test"`.
            shard: `(index, count)`: keep only this worker's share, one of
                `count` equal ones (the few left over are left out).
            limit: keep only the first `limit` examples (of the share), as
                `make_dataset`'s `limit` does; the others are not decoded.
        """
        spec = self.spec
        examples = self._selected(split)
        if shard is not None:
            index, count = shard
            share = len(examples) // count
            examples = examples.subset(np.arange(index * share, (index + 1) * share))
        check_limit(limit)
        if limit is not None:
            # Before decoding: `--limit 100` of 63,000 files decoded all of them, to train on 100.
            examples = examples.subset(np.arange(min(limit, len(examples))))
        if examples.files is None:
            images = convert_arrays(examples.images, spec.channels, spec.shape[:2])
            return Examples(images=images, labels=examples.labels)
        memory_limit = self.options.memory_limit or default_memory_limit()
        if examples.nbytes(spec.shape) <= memory_limit:
            images = decode_files(examples.files, spec, self.verbose, examples.resize)
            return Examples(images=images, labels=examples.labels)
        return examples


def decode_files(files, spec, verbose=False, resize=True):
    """Decodes image files in parallel into uint8 `[n, *spec.shape]`, naming a bad one.

    `verbose` shows the batches' count as they are decoded (`aekeras.progress.tracked`),
    for `folder.PROGRESS_FILES` files or more; `resize`: see `decode_file`.
    """
    batch_size = 256
    dataset = (
        tf.data.Dataset.from_tensor_slices(files)
        .batch(batch_size)
        .map(lambda paths: decode_batch(paths, spec, resize), num_parallel_calls=tf.data.AUTOTUNE)
    )
    shown = verbose and len(files) >= folder.PROGRESS_FILES
    batches = tracked(dataset, -(-len(files) // batch_size), "decoding images into memory (batches)", shown)
    try:
        return np.concatenate([batch.numpy() for batch in batches])
    except tf.errors.NotFoundError:
        check_present(files)
        raise
    except tf.errors.InvalidArgumentError:
        check_decodable(files, spec, resize)
        raise


def check_present(files, size=None):
    """Raises a DataError naming the first of `files` gone, or no longer of `size`, since the folder was scanned.

    One removed since (the folder changed while it trained) failed in
    TensorFlow's NotFoundError, a traceback naming no step of ours; one
    replaced by an image of another size was resized into the batch,
    where the scan would have asked for `--image-size`. `size`: the
    `(height, width)` every file had (a folder read at its own size).
    """
    for path in files:
        if not os.path.isfile(path):
            raise DataError(
                f"{path}: no longer there (it was when the folder was scanned; expected the folder to stay "
                "as it was while it is read)"
            )
        found = None if size is None else folder.image_size(path)
        if found is not None and found != tuple(size):
            raise DataError(
                f"{path}: {found[0]}x{found[1]} pixels, not the {size[0]}x{size[1]} of every image when the "
                "folder was scanned (expected the folder to stay as it was while it is read, or --image-size "
                "to resize every image)"
            )


def check_decodable(files, spec, resize=True):
    """Decodes `files` one by one (slow: only to name the one that failed; `resize`: see `decode_file`).

    Raises:
        DataError: naming the first file gone or of another size since the
            folder was scanned, else the first file TensorFlow cannot decode.
    """
    check_present(files, None if resize else spec.shape[:2])
    for path in files:
        try:
            decode_file(path, spec.channels, spec.shape[:2], resize)
        except tf.errors.InvalidArgumentError as e:
            raise DataError(f"{path}: cannot be decoded as an image ({decoder_reason(e)})") from None


@contextlib.contextmanager
def naming_undecodable_files(source):
    """Turns a decoding failure, or a file gone, in a pipeline of `source`'s files into a `DataError` that names the file.

    Files decoded as they are read (folders above the memory limit) fail
    inside `fit` or `evaluate`, in an error that names no file.
    """
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        if not isinstance(source, FolderSource):
            raise
        files = [f for split in source.scan.splits.values() for f in split.files]
        # Other errors (a shape check's, a log folder gone) are raised as
        # they are, without reading every file again.
        if isinstance(error, tf.errors.NotFoundError) and any(str(f) in error.message for f in files):
            check_present(files)
        elif isinstance(error, tf.errors.InvalidArgumentError) and "decode" in error.message.lower():
            check_decodable(files, source.spec, source.resizes)
        raise


class BuiltinSource(Source):
    """MNIST or Fashion-MNIST from IDX files, else a prepared TFDS copy."""

    def __init__(self, location, options):
        super().__init__(location, options)
        self.dataset = BUILTIN[location]

    def _native(self):
        d = self.dataset
        return d.shape[:2], d.shape[2], d.class_names, len(d.class_names), SPLITS

    def _folders(self):
        if self.options.data_dir is not None:
            return [("data_dir", Path(self.options.data_dir))]
        return list(self.dataset.local_folders())

    def _read(self, split):
        tried = []
        d = self.dataset
        for label, candidate in self._folders():
            try:
                idx_paths(candidate, split)
            except DataError as e:
                if self.options.data_dir is not None:
                    raise
                tried.append(f"{label} ({e})")
                continue
            images, labels = read_idx_split(candidate, split, d.shape[:2], len(d.class_names))
            return Examples(images=images, labels=labels)
        try:
            builder = tfds_source.tfds_builder(d.name, None)
            images, labels = tfds_source.read_tfds_split(builder, split, d.shape[2], None)
            return Examples(images=images, labels=labels)
        except DataError as e:
            tried.append(str(e))
        raise DataError(
            f"no source could serve {d.name} {split}; tried: "
            + "; ".join(tried)
            + ". Point --data-dir or $AEKERAS_DATA_DIR at a folder holding the four IDX files"
        )


class TfdsSource(Source):
    """Any TFDS image data set, `tfds:NAME`, read from a prepared data folder."""

    def __init__(self, location, options):
        super().__init__(location, options)
        self.builder = tfds_source.tfds_builder(location[len(TFDS_PREFIX) :], options.data_dir)

    def _native(self):
        image_key, label_key = tfds_source.image_and_label_keys(self.builder)
        features = self.builder.info.features
        height, width, channels = features[image_key].shape
        if (height is None or width is None) and self.options.image_size is None:
            raise DataError(f"{self.location}: images vary in size (pass --image-size)")
        names = tuple(features[label_key].names) if label_key else None
        return (
            (height, width),
            channels,
            names,
            len(names) if names else None,
            tuple(self.builder.info.splits),
        )

    def _read(self, split):
        images, labels = tfds_source.read_tfds_split(
            self.builder, split, self.spec.channels, self.options.image_size
        )
        return Examples(images=images, labels=labels)


class FolderSource(Source):
    """A folder of PNG, JPEG, BMP, GIF or WebP images; see `aekeras.data.load`."""

    def __init__(self, location, options, verbose=False):
        super().__init__(location, options, verbose)
        self.scan = folder.scan_folder(location, verbose)

    def _native(self):
        sizes = self.scan.sizes
        if len(sizes) > 1 and self.options.image_size is None:
            (a, path_a), (b, path_b) = list(sizes.items())[:2]
            raise DataError(
                f"{self.location}: images differ in size ({a[0]}x{a[1]} in {path_a}, {b[0]}x{b[1]} "
                f"in {path_b}); pass --image-size HxW to resize them"
            )
        names = self.scan.class_names
        return (
            next(iter(sizes)),
            1 if self.scan.grey else 3,
            names,
            len(names) if names else None,
            tuple(self.scan.splits),
        )

    def _read(self, split):
        # Without --image-size the scan found one size: a file of another is one changed since.
        return dataclasses.replace(self.scan.splits[split], resize=self.resizes)

    @property
    def resizes(self):
        """Whether files are resized as they are decoded: only where --image-size asked for it.

        Otherwise a file of another size than the scan found is refused
        (`decode_file`'s `resize`), not resized.
        """
        return self.options.image_size is not None

    def file_names_digest(self):
        return self.scan.names_digest


class ArraySource(Source):
    """An `.npz` or `.npy` file of images; see `aekeras.data.load`."""

    def __init__(self, location, options):
        super().__init__(location, options)
        self.splits = arrays.read_array_file(location)

    def _native(self):
        train = self.splits["train"]
        self._check_splits_agree()
        labelled = [e.labels for e in self.splits.values() if e.labels is not None]
        num_classes = int(max(labels.max() for labels in labelled)) + 1 if labelled else None
        return train.images.shape[1:3], train.images.shape[3], None, num_classes, tuple(self.splits)

    def _read(self, split):
        return self.splits[split]

    def _check_splits_agree(self):
        """Test images of another size or channel count are refused, unless the options convert both splits."""
        if "test" not in self.splits:
            return
        (height, width, channels), (test_height, test_width, test_channels) = (
            self.splits[split].images.shape[1:] for split in ("train", "test")
        )
        if (height, width) != (test_height, test_width) and self.options.image_size is None:
            raise DataError(
                f"{self.location}: 'images' are {height}x{width} but 'test_images' {test_height}x{test_width}; "
                "pass --image-size HxW to resize both"
            )
        if _own_channels(channels) != _own_channels(test_channels) and self.options.channels is None:
            raise DataError(
                f"{self.location}: 'images' are {channels}-channel images but 'test_images' {test_channels}-channel "
                "ones; pass --channels 1 or 3 to convert both"
            )


def open_source(source, *, verbose=False, **options):
    """Opens a data source: a built-in name, `tfds:NAME`, a folder or an array file.

    Args:
        source: `"mnist"`, `"fashion_mnist"`, `"tfds:NAME"`, a folder of
            images, or an `.npz`/`.npy` file.
        verbose: show the progress of scanning a folder's files and of
            decoding them into memory (a bar on a terminal, else lines).
        **options: the fields of `ReadOptions`.

    Returns:
        A `Source`, whose `spec` is read at once and whose splits are read
        when first asked for.

    Raises:
        DataError: in one line, for a source that does not exist or cannot
            be read, or options that cannot apply.
    """
    options = ReadOptions(**options)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        # An array's repr would fill the screen; its kind says enough.
        shown = f"an array of shape {tuple(source.shape)}" if hasattr(source, "shape") else repr(source)
        raise DataError(
            f"data source must be a name or a path, got {shown} (for arrays in memory, save them with "
            "numpy.savez and pass the file)"
        )
    if source in BUILTIN:
        opened = BuiltinSource(source, options)
    elif source.startswith(TFDS_PREFIX):
        opened = TfdsSource(source, options)
    else:
        opened = _open_path(source, options, verbose)
    opened.spec  # noqa: B018 - reads the description now, so that errors come first
    return opened


def _open_path(source, options, verbose):
    check_source(source)
    path = Path(source).expanduser()
    location = str(path.absolute())
    if path.is_dir():
        return FolderSource(location, options, verbose)
    if path.suffix.lower() in arrays.ARRAY_SUFFIXES:
        return ArraySource(location, options)
    raise DataError(f"{source}: neither a folder of images nor an .npz/.npy array file")
