"""The IDX file format of MNIST and Fashion-MNIST."""

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from aekeras.errors import DataError

# IDX type codes (third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


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


def _parse_header(content, name):
    """Returns `(shape, dtype, header_size)`, checking the magic number."""
    if len(content) < 4:
        raise DataError(f"{name}: {len(content)} bytes is too short for an IDX header (expected at least 4)")
    zero, type_code, ndim = content[0:2], content[2], content[3]
    if zero != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{name}: bad IDX magic number 0x{content[:4].hex()} (expected 0x0000 followed "
            f"by a type code in {sorted(hex(c) for c in _IDX_DTYPES)} and a non-zero rank)"
        )
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DataError(
            f"{name}: header promises {ndim} dimensions but the file ends after {len(content)} bytes"
        )
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return shape, _IDX_DTYPES[type_code], header_size


def parse_idx(content, name="<bytes>"):
    """Parses the bytes of an IDX file; see `read_idx`."""
    shape, dtype, header_size = _parse_header(content, name)
    # Python integers: a product of large dimensions must not wrap around.
    expected = header_size + math.prod(shape) * dtype.itemsize
    if len(content) != expected:
        raise DataError(
            f"{name}: header promises shape {shape} ({expected} bytes in all) but the "
            f"file holds {len(content)} bytes"
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
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: a file, not a data folder (expected the folder holding the IDX files)")
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
                f"{folder}: no {stem} or {stem}.gz (expected the four IDX files: "
                "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                "t10k-labels-idx1-ubyte, raw or .gz)"
            )
    return tuple(paths)


def read_idx_split(folder, split, image_size, num_classes):
    """Reads and cross-checks the images and labels of one split.

    Args:
        folder: the folder holding the IDX files.
        split: `"train"` or `"test"`.
        image_size: `(height, width)` the images must have.
        num_classes: labels must lie in `[0, num_classes)`.

    Returns:
        `(images, labels)`: uint8 `[n, height, width, 1]` and int64 `[n]`.

    Raises:
        DataError: if a file is malformed, the images are not of
            `image_size` and uint8, the labels out of range, or the counts
            differ.
    """
    images_path, labels_path = idx_paths(folder, split)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != tuple(image_size):
        expected = "x".join(str(d) for d in image_size)
        raise DataError(
            f"{images_path}: images of shape {images.shape[1:]} and dtype {images.dtype} "
            f"(expected {expected} uint8 images)"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{labels_path}: labels of shape {labels.shape} and dtype {labels.dtype} "
            "(expected a 1-D uint8 array)"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels (expected equal counts)"
        )
    if labels.size and labels.max() >= num_classes:
        raise DataError(f"{labels_path}: label {labels.max()} found (expected 0-{num_classes - 1})")
    return images[..., np.newaxis], labels.astype(np.int64)
