"""MNIST-style data sets as `tf.data` pipelines.

`load` finds the data (local IDX files first, TFDS last), checks it, and
returns a cached, shuffled, batched and prefetched `tf.data.Dataset` of
float32 images ready for `model.fit`.
"""

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf

DATASETS = ("mnist", "fashion_mnist")
SPLITS = ("train", "test")
SOURCES = ("auto", "local", "tfds")
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))
DATA_DIR_ENV = "AEKERAS_DATA_DIR"
IMAGE_SHAPE = (28, 28, 1)

_TFDS_MANUAL_DIR = Path("~/tensorflow_datasets/downloads/manual")
_DEBIAN_DIRS = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_SPLIT_SIZES = {"train": 60000, "test": 10000}

# IDX type codes (third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ValueError):
    """A data file or folder is missing, malformed or inconsistent."""


def read_idx(path):
    """Reads one IDX file (raw or gzip-compressed) into a numpy array.

    The magic number, the dimensions and the exact byte count promised by the
    header are all checked, so a truncated, corrupt or mislabelled file fails
    here instead of producing a wrong array.

    Args:
        path: path of an IDX file; a `.gz` suffix means gzip-compressed.

    Returns:
        A numpy array with the file's shape and dtype (native byte order).

    Raises:
        DataError: naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                content = f.read()
        else:
            content = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a valid gzip file ({e})") from None
    return parse_idx(content, name=str(path))


def parse_idx(content, name="<bytes>"):
    """Parses the bytes of an IDX file; see `read_idx`."""
    if len(content) < 4:
        raise DataError(
            f"{name}: {len(content)} bytes is too short for an IDX header "
            "(expected at least 4)"
        )
    zero, type_code, ndim = content[0:2], content[2], content[3]
    if zero != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{name}: bad IDX magic number 0x{content[:4].hex()} (expected "
            "0x0000 followed by a type code in "
            f"{sorted(hex(c) for c in _IDX_DTYPES)} and a non-zero rank)"
        )
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DataError(
            f"{name}: header promises {ndim} dimensions but the file ends "
            f"after {len(content)} bytes"
        )
    shape = tuple(
        int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big")
        for i in range(ndim)
    )
    dtype = _IDX_DTYPES[type_code]
    # Python integers: a product of large dimensions must not wrap around.
    expected = header_size + math.prod(shape) * dtype.itemsize
    if len(content) != expected:
        raise DataError(
            f"{name}: header promises shape {shape} ({expected} bytes in all) "
            f"but the file holds {len(content)} bytes"
        )
    array = np.frombuffer(content, dtype=dtype, offset=header_size)
    try:
        array = array.reshape(shape)
    except ValueError as e:  # too many dimensions, or sizes numpy cannot index
        raise DataError(f"{name}: header promises shape {shape}, which numpy cannot hold ({e})") from None
    return array.astype(dtype.newbyteorder("="))


def idx_paths(folder, split):
    """Returns the (images, labels) IDX paths of a split in `folder`.

    Each file may be raw or `.gz`; the raw one wins where both exist.

    Raises:
        DataError: if the folder or one of the files is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder does not exist")
    prefix = _SPLIT_PREFIX[split]
    paths = []
    for kind, rank in (("images", 3), ("labels", 1)):
        stem = f"{prefix}-{kind}-idx{rank}-ubyte"
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                paths.append(candidate)
                break
        else:
            raise DataError(
                f"{folder}: no {stem} or {stem}.gz (expected the four MNIST "
                "IDX files: train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or .gz)"
            )
    return tuple(paths)


def read_idx_split(folder, split):
    """Reads and cross-checks the images and labels of one split.

    Returns:
        `(images, labels)`: uint8 `[n, 28, 28, 1]` and int64 `[n]`.

    Raises:
        DataError: if a file is malformed, the images are not 28x28 uint8,
            the labels are not digits 0-9, or the counts differ.
    """
    images_path, labels_path = idx_paths(folder, split)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE[:2]:
        raise DataError(
            f"{images_path}: images of shape {images.shape[1:]} and dtype "
            f"{images.dtype} (expected 28x28 uint8 images)"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{labels_path}: labels of shape {labels.shape} and dtype "
            f"{labels.dtype} (expected a 1-D uint8 array)"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} "
            f"holds {len(labels)} labels (expected equal counts)"
        )
    if labels.size and labels.max() > 9:
        raise DataError(
            f"{labels_path}: label {labels.max()} found (expected digits 0-9)"
        )
    return images[..., np.newaxis], labels.astype(np.int64)


def _local_candidates(name):
    """Yields (description, folder) for each implicit local source, in order."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        env = Path(env).expanduser()
        if not env.is_dir():
            raise DataError(f"${DATA_DIR_ENV}={env}: data folder does not exist")
        yield f"${DATA_DIR_ENV}/{name}", env / name
        if name == "mnist":
            yield f"${DATA_DIR_ENV}", env
    manual = _TFDS_MANUAL_DIR.expanduser()
    yield "TFDS manual folder", manual / name
    yield "TFDS manual folder", manual
    if name in _DEBIAN_DIRS:
        yield "Debian dataset-fashion-mnist", _DEBIAN_DIRS[name]


def _load_tfds(name, split):
    import tensorflow_datasets as tfds

    images, labels = tfds.as_numpy(
        tfds.load(name, split=split, batch_size=-1, as_supervised=True)
    )
    return images.astype(np.uint8), labels.astype(np.int64)


def load_arrays(name, split, *, source="auto", data_dir=None):
    """Loads a whole split as numpy arrays.

    An explicit `data_dir` is the only source tried, so a wrong folder fails
    loudly. Otherwise, in order: the `AEKERAS_DATA_DIR` environment
    variable's folder (`$AEKERAS_DATA_DIR/<name>/`, or for mnist the folder
    itself); the TFDS manual-download folder (`<manual>/<name>/`, then
    `<manual>/`); for fashion_mnist, Debian's `dataset-fashion-mnist` files;
    and last, unless `source="local"`, `tfds.load(name)`. A folder serves if
    it holds the split's two IDX files.

    Args:
        name: `"mnist"` or `"fashion_mnist"`.
        split: `"train"` or `"test"`.
        source: `"auto"`, `"local"` (IDX files only) or `"tfds"`.
        data_dir: folder of this data set's IDX files.

    Returns:
        `(images, labels)`: uint8 `[n, 28, 28, 1]` and int64 `[n]`.

    Raises:
        DataError: if no source can serve, listing the sources tried.
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r} (expected one of {DATASETS})")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} (expected one of {SPLITS})")
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r} (expected one of {SOURCES})")

    if data_dir is not None:
        return read_idx_split(data_dir, split)
    tried = []
    if source in ("auto", "local"):
        for label, folder in _local_candidates(name):
            try:
                idx_paths(folder, split)
            except DataError as e:
                tried.append(f"{label} ({e})")
                continue
            return read_idx_split(folder, split)
    if source in ("auto", "tfds"):
        try:
            return _load_tfds(name, split)
        except Exception as e:  # Any failure: offline, no builder, bad cache.
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            tried.append(f"tfds.load({name!r}) ({first_line})")
    raise DataError(
        f"no source could serve {name} {split}; tried: " + "; ".join(tried)
        + f". Point data_dir or ${DATA_DIR_ENV} at a folder holding the four "
        "IDX files (raw or .gz)"
    )


def load(
    name,
    split,
    *,
    batch_size=256,
    shuffle=None,
    value_range=(0.0, 1.0),
    flatten=False,
    labels=False,
    source="auto",
    data_dir=None,
    seed=0,
    limit=None,
    drop_remainder=False,
):
    """Returns a split of MNIST or Fashion-MNIST as a `tf.data.Dataset`.

    The images are float32, scaled to `value_range`, cached in memory,
    shuffled with `seed` (training split by default), batched and prefetched
    with AUTOTUNE.

    Args:
        name: `"mnist"` or `"fashion_mnist"`.
        split: `"train"` or `"test"`.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch; defaults to `split == "train"`.
        value_range: `(0, 1)` or `(-1, 1)`, the scale of the pixels.
        flatten: yield `[batch, 784]` instead of `[batch, 28, 28, 1]`.
        labels: yield `(images, labels)` tuples instead of images.
        source: `"auto"`, `"local"` or `"tfds"`; see `load_arrays`.
        data_dir: folder of this data set's IDX files; see `load_arrays`.
        seed: shuffle seed; the same seed gives the same order.
        limit: keep only the first `limit` examples of the split.
        drop_remainder: drop the last, smaller batch.

    Example:

    >>> train = aekeras.data.load("mnist", "train", value_range=(-1, 1))
    >>> model.fit(train, epochs=20)
    """
    value_range = tuple(float(v) for v in value_range)
    if value_range not in VALUE_RANGES:
        raise DataError(
            f"value_range {value_range} is not supported (expected one of "
            f"{VALUE_RANGES})"
        )
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    if limit is not None and not (isinstance(limit, int) and limit > 0):
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")

    images, label_array = load_arrays(name, split, source=source, data_dir=data_dir)
    if limit is not None:
        images, label_array = images[:limit], label_array[:limit]
    low, high = value_range
    # Scale once in numpy: the cached tensors are then ready for every epoch.
    pixels = images.astype(np.float32) * np.float32((high - low) / 255.0)
    pixels += np.float32(low)
    if flatten:
        pixels = pixels.reshape(len(pixels), -1)

    elements = (pixels, label_array) if labels else pixels
    dataset = tf.data.Dataset.from_tensor_slices(elements).cache()
    if shuffle is None:
        shuffle = split == "train"
    if shuffle:
        dataset = dataset.shuffle(
            len(pixels), seed=seed, reshuffle_each_iteration=True
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
