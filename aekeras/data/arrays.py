"""Images from `.npz` and `.npy` array files."""

import zipfile
from pathlib import Path

import numpy as np

from aekeras.data.examples import Examples
from aekeras.errors import DataError

ARRAY_SUFFIXES = (".npz", ".npy")
_NPZ_KEYS = ("images", "labels", "test_images", "test_labels")


def check_images(array, where):
    """Returns images as `[n, h, w, c]` uint8 or float32 on [0, 1], or raises DataError."""
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or not 1 <= array.shape[-1] <= 4 or 0 in array.shape[1:]:
        # PyTorch's layout, [n, channels, height, width], is the likely mistake.
        channels_first = array.ndim == 4 and 1 <= array.shape[1] <= 4 and 0 not in array.shape
        raise DataError(
            f"{where}: images of shape {array.shape} (expected [n, height, width] or "
            "[n, height, width, channels] with 1 to 4 channels"
            + ("; channels first? np.moveaxis(images, 1, -1) puts them last)" if channels_first else ")")
        )
    if len(array) == 0:
        raise DataError(f"{where}: no images (expected at least one)")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{where}: images of dtype {array.dtype} (expected uint8 0-255 or float in [0, 1])")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise DataError(f"{where}: images hold NaN or infinite values (expected floats in [0, 1])")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise DataError(
            f"{where}: float images range over [{low:g}, {high:g}] (expected [0, 1]; "
            "store 0-255 pixels as uint8)"
        )
    return array


def check_labels(labels, count, where):
    """Returns labels as int64 `[count]`, or raises DataError."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{where}: labels of shape {labels.shape} and dtype {labels.dtype} (expected a "
            "1-D array of integers)"
        )
    if len(labels) != count:
        raise DataError(f"{where}: {len(labels)} labels for {count} images (expected one label per image)")
    if labels.size and labels.min() < 0:
        raise DataError(f"{where}: label {labels.min()} found (expected labels >= 0)")
    return labels.astype(np.int64)


def _npz_arrays(path):
    # numpy reads a file that is no zip archive as a pickle, and says so.
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .npz archive (expected a zip of arrays, as numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as e:  # object arrays need pickle, which is refused
        raise DataError(f"{path}: cannot read it without pickle ({e}); store plain numeric arrays") from None
    if "images" not in arrays:
        if len(arrays) != 1:
            raise DataError(
                f"{path}: holds {sorted(arrays)} (expected an array named 'images', or a single "
                "array; optional: 'labels', 'test_images', 'test_labels')"
            )
        arrays = {"images": next(iter(arrays.values()))}
    unknown = sorted(set(arrays) - set(_NPZ_KEYS))
    if unknown:
        raise DataError(f"{path}: unexpected arrays {unknown} (expected {list(_NPZ_KEYS)})")
    return arrays


def read_array_file(path):
    """Reads an `.npz` or `.npy` file into `{split: Examples}`.

    An `.npy` file holds images only. An `.npz` file holds `images` (or a
    single array), and optionally `labels`, `test_images` and `test_labels`.
    Images are uint8 (0-255) or floats on [0, 1], `[n, h, w]` or
    `[n, h, w, c]`.

    Raises:
        DataError: naming the file and what does not fit.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            arrays = {"images": np.load(path, mmap_mode="r", allow_pickle=False)}
        else:
            arrays = _npz_arrays(path)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable {path.suffix} file ({e})") from None
    splits = {}
    for split, prefix in (("train", ""), ("test", "test_")):
        if f"{prefix}images" not in arrays:
            continue
        images = check_images(arrays[f"{prefix}images"], f"{path} '{prefix}images'")
        labels = arrays.get(f"{prefix}labels")
        if labels is not None:
            labels = check_labels(labels, len(images), f"{path} '{prefix}labels'")
        splits[split] = Examples(images=images, labels=labels)
    if "test" in splits and (splits["train"].labels is None) != (splits["test"].labels is None):
        raise DataError(f"{path}: labels for one split only (expected 'labels' and 'test_labels' together)")
    return splits
