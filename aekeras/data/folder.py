"""Images from a folder: flat, one subfolder per class, or train/ and test/."""

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from aekeras.data.examples import HOLDOUT_SEED, Examples
from aekeras.errors import DataError
from aekeras.progress import tracked

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# Pillow modes without colour; a folder of only these gives one channel.
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SPLIT_FOLDERS = ("train", "test")
# Reading this many files or more shows its progress, where asked: fewer
# take about a second (70,000 MNIST PNGs were scanned in 2-7 s, and decoded
# in as long), and lines for them would only clutter.
PROGRESS_FILES = 10_000


@dataclasses.dataclass
class FolderScan:
    """What scanning a folder found: its files, labels and image sizes."""

    splits: dict  # split -> Examples (files and labels)
    class_names: tuple  # None for a flat folder
    sizes: dict  # (height, width) -> a file of that size
    grey: bool  # every image has no colour
    names_digest: str  # of every file's path within the folder, split by split (`names_digest`)


def _visible(entries):
    return sorted(e for e in entries if not e.name.startswith("."))


def _image_files(folder, recursive):
    walk = folder.rglob("*") if recursive else folder.iterdir()
    return [
        p
        for p in _visible(walk)
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def _list_split(folder, class_names=None):
    """`(files, labels, class_names)` of a flat or one-subfolder-per-class folder."""
    subfolders = [p for p in _visible(folder.iterdir()) if p.is_dir()]
    flat = _image_files(folder, recursive=False)
    classes = {d.name: _image_files(d, recursive=True) for d in subfolders}
    classes = {name: files for name, files in classes.items() if files}
    if flat and classes:
        raise DataError(
            f"{folder}: holds both image files and subfolders of images (expected either "
            "images only, or one subfolder of images per class)"
        )
    if flat:
        return flat, None, None
    if class_names is None:
        class_names = tuple(sorted(classes))
    unknown = sorted(set(classes) - set(class_names))
    if unknown:
        raise DataError(f"{folder}: classes {unknown} are not among the training classes {list(class_names)}")
    files = [f for name in class_names for f in classes.get(name, [])]
    labels = [i for i, name in enumerate(class_names) for _ in classes.get(name, [])]
    return files, labels, class_names


# What Pillow raises for a file it cannot read as an image. DecompressionBombError:
# a header claiming more pixels than Pillow's limit (a hostile file), refused
# before any of them is decoded.
_UNREADABLE = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)


def image_size(path):
    """`(height, width)` of an image file as its header says, nothing decoded; None if Pillow cannot read it."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except _UNREADABLE:
        return None


def _inspect(path):
    """`(height, width, grey)` of an image file, checking that it is whole and that TensorFlow reads it."""
    try:
        with Image.open(path) as image:
            width, height, mode, kind = *image.size, image.mode, image.format
            image.verify()
        if mode == "P":  # a palette of greys is a grey image (verify leaves the image unusable)
            with Image.open(path) as image:
                mode = "L" if _grey_palette(image) else mode
    except _UNREADABLE as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    _refuse_misread_bmp(path, kind, mode)
    return height, width, mode in _GREY_MODES


def _refuse_misread_bmp(path, kind, mode):
    """Refuses the BMPs TensorFlow's decoder misreads: it gives a palette's indices, not its colours, and no 1-bit image."""
    if kind == "BMP" and mode in ("P", "1"):
        kind = "an 8-bit palette" if mode == "P" else "a 1-bit"
        raise DataError(
            f"{path}: {kind} BMP, which TensorFlow's decoder cannot read as its colours "
            "(expected a grey, RGB or RGBA BMP; save it as PNG)"
        )


def _grey_palette(image):
    """Whether every colour of a palette image's palette is a grey (a grey GIF or palette PNG)."""
    palette = image.getpalette()
    rgb = np.array(palette if palette is not None else [1, 0, 0]).reshape(-1, 3)
    return bool((rgb == rgb[:, :1]).all())


def _layout(folder):
    """The split folders of `folder`: `[train, test]`, `[train]`, or `[folder]` itself.

    Split folders are named in any case (`Train/`, `TEST/`). Hidden folders
    (`.git`, `.ipynb_checkpoints`) and folders without images beside train/
    are not part of the layout; image files beside train/ are refused,
    where they would be left out unseen.
    """
    entries = [
        p
        for p in _visible(folder.iterdir())
        if p.is_dir() and (p.name.lower() in _SPLIT_FOLDERS or _image_files(p, recursive=True))
    ]
    splits = {}
    for entry in (p for p in entries if p.name.lower() in _SPLIT_FOLDERS):
        if entry.name.lower() in splits:
            raise DataError(
                f"{folder}: holds both {splits[entry.name.lower()].name}/ and {entry.name}/ (expected one)"
            )
        splits[entry.name.lower()] = entry
    if "train" not in splits:
        if len(entries) == 1 and "test" in splits:
            raise DataError(
                f"{folder}: a {entries[0].name}/ folder but no train/ (expected both, or the images themselves)"
            )
        return [folder]
    others = [p.name for p in entries if p.name.lower() not in _SPLIT_FOLDERS]
    if others:
        raise DataError(
            f"{folder}: holds {splits['train'].name}/ beside {', '.join(f'{n}/' for n in others)} (expected "
            "train/ alone, or train/ and test/: name a held-out split test/)"
        )
    if strays := _image_files(folder, recursive=False):
        raise DataError(
            f"{folder}: holds {len(strays)} image files, such as {strays[0].name}, beside "
            f"{splits['train'].name}/ (expected every image inside train/ or test/)"
        )
    # A train/ folder alone is the training split (its test split is held out), not one class.
    return [splits[s] for s in _SPLIT_FOLDERS if s in splits]


def scan_folder(folder, verbose=False):
    """Lists and checks a folder's images; see `aekeras.data.load` for the layouts.

    Every file is opened and verified (Pillow), so a corrupt one is named
    here, before any training. `verbose` shows the files' count as it goes
    (`aekeras.progress.tracked`), for `PROGRESS_FILES` files or more.

    Raises:
        DataError: for a missing or empty folder, a mixed layout, or an
            unreadable image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder does not exist")
    layout = _layout(folder)
    train_files, train_labels, class_names = _list_split(layout[0])
    splits = {"train": (train_files, train_labels)}
    if len(layout) == 2:
        test_files, test_labels, _ = _list_split(layout[1], class_names)
        if not test_files:
            raise DataError(f"{layout[1]}: no images (expected the test split's images)")
        if (test_labels is None) != (train_labels is None):
            raise DataError(f"{folder}: train/ and test/ must both be flat or both have class subfolders")
        splits["test"] = (test_files, test_labels)
    if not train_files:
        raise DataError(
            f"{layout[0]}: no images (expected PNG, JPEG, BMP, GIF or WebP files, in the folder or "
            "in one subfolder per class)"
        )
    every_file = [f for files, _ in splits.values() for f in files]
    # One thread: Pillow holds the GIL here, and a pool of 8 took 3-4x as long.
    shown = verbose and len(every_file) >= PROGRESS_FILES
    found = [
        _inspect(path) for path in tracked(every_file, len(every_file), "scanning images (files)", shown)
    ]
    sizes = {}
    for path, (height, width, _) in zip(every_file, found, strict=True):
        sizes.setdefault((height, width), path)
    examples = {
        split: Examples(
            files=np.array([str(f) for f in files]),
            labels=None if labels is None else np.array(labels, np.int64),
        )
        for split, (files, labels) in splits.items()
    }
    if len(splits) == 2:  # other layouts' test splits are held out in a seeded order already
        examples = {split: _in_seeded_order(split_examples) for split, split_examples in examples.items()}
    digest = names_digest(folder, [files for files, _ in splits.values()])
    return FolderScan(examples, class_names, sizes, all(grey for _, _, grey in found), digest)


def names_digest(folder, splits):
    """A short digest of the files' paths within `folder`, each split's as listed.

    A resumed run compares it: a file renamed, or one removed and another
    added, keeps the counts but moves the held-out test split (it is drawn
    by position), so that images trained on would be tested on. The paths
    are within the folder, which may move; the files are not read.
    """
    digest = hashlib.sha256()
    for files in splits:
        for path in files:
            digest.update(os.fsencode(path.relative_to(folder)) + b"\0")  # any name the file system holds
        digest.update(b"\1")  # the end of a split
    return digest.hexdigest()[:16]


def _in_seeded_order(examples):
    """The examples in a fixed, seeded order rather than class by class as listed: `limit`'s first span the classes."""
    return examples.subset(np.random.default_rng(HOLDOUT_SEED).permutation(len(examples)))
