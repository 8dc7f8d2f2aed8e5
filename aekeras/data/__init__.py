"""Images for aekeras models, from any source, as `tf.data` pipelines.

`load(source, split)` opens a source (a built-in name, `tfds:NAME`, a
folder of images or an `.npz`/`.npy` file) and returns a batched pipeline of
float32 images; `open_source(source)` gives the source itself, with its
`ImageSpec` (`.spec`) and its splits (`.examples(split)`). Every problem
with the data is a `DataError` with a one-line message.
"""

from pathlib import Path

from aekeras.data.builtin import BUILTIN, data_dir_from_environment
from aekeras.errors import DataError
from aekeras.lazy import lazy_attributes

# Names and the modules that define them: loaded when first used, so that
# the command line can read the built-in names without TensorFlow.
_LAZY = {
    "DATA_DIR_ENV": "builtin",
    "DEFAULT_SPEC": "builtin",
    "idx_paths": "idx",
    "parse_idx": "idx",
    "read_idx": "idx",
    "make_dataset": "pipeline",
    "unit_scale": "pipeline",
    "SPLITS": "sources",
    "ReadOptions": "sources",
    "Source": "sources",
    "decode_files": "sources",
    "naming_undecodable_files": "sources",
    "open_source": "sources",
    "UNIT_RANGE": "spec",
    "VALUE_RANGES": "spec",
    "ImageSpec": "spec",
    "to_model_scale": "spec",
    "to_unit_scale": "spec",
}
DATASETS = tuple(BUILTIN)
CHANNELS = (1, 3)  # what images convert to: grey or RGB
TFDS_PREFIX = "tfds:"


def is_named_source(source):
    """Whether `source` names a built-in or TFDS data set rather than a path."""
    return source in DATASETS or source.startswith(TFDS_PREFIX)


def check_source(source, data_dir=None):
    """Raises DataError for a source that is not there, as `open_source` would, without TensorFlow.

    A path that does not exist, a built-in name's `data_dir` without its
    four IDX files, or `$AEKERAS_DATA_DIR` naming no folder: what a command
    refuses before TensorFlow loads, in a fraction of a second rather than
    several. Whether the files can be read, and options that cannot apply,
    only `open_source` finds.
    """
    if source in BUILTIN:
        if data_dir is None:
            data_dir_from_environment()
            return
        from aekeras.data.idx import idx_paths

        for split in ("train", "test"):
            idx_paths(data_dir, split)
    elif not source.startswith(TFDS_PREFIX) and not Path(source).expanduser().exists():
        raise DataError(
            f"{source}: no such file or folder (expected {', '.join(BUILTIN)}, tfds:NAME, a folder "
            "of images, or an .npz/.npy file)"
        )


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


def load(source, split, *, shuffle=None, **options):
    """One split of a data source as a `tf.data.Dataset` ready for `model.fit`.

    Sources (README, "Your own data"): `"mnist"`, `"fashion_mnist"` (IDX
    files, found in `data_dir`, `$AEKERAS_DATA_DIR`, the TFDS manual folder,
    Debian's package, then a prepared TFDS copy); `"tfds:NAME"` (prepared in
    `data_dir` or TFDS's folder; downloaded only where a network answers); a
    folder of PNG, JPEG, BMP, GIF or WebP images (flat, one subfolder per class,
    or `train/` and `test/`); an `.npz` (`images`, optional `labels`,
    `test_images`, `test_labels`) or `.npy` file, uint8 or float [0, 1]. A
    source without a test split holds out `test_fraction` of its training
    examples, the same ones on every run.

    Args:
        source: a name or path, as above.
        split: `"train"` or `"test"`.
        shuffle: reshuffle every epoch; defaults to `split == "train"`.
            A shuffled pipeline leaves out each epoch's short last batch
            (a different one each epoch) unless `drop_remainder=False`.
        **options: how the source is read (`ReadOptions`: `data_dir=None`,
            `image_size=None`, `channels=None` (1 or 3),
            `test_fraction=0.1`, `memory_limit=None`) and how it is
            batched (`make_dataset`): `batch_size=256`; `seed=0` (the
            shuffle order); `value_range=(0, 1)` or `(-1, 1)` (pass the
            model's `value_range`); `flatten=False` (`True`: `[batch,
            h*w*c]` vectors); `labels=False` (`True`: `(images, labels)`
            pairs, labels int64 `[batch]`); `drop_remainder=None` (that
            is, `shuffle`); `limit=None` (the first `limit` examples, the
            only ones decoded); `keep_uint8=False` (`True`: 8-bit images as
            stored, uint8 0-255, which aekeras models scale in their step
            as `aekeras train` has them do: the step reads a quarter of the
            bytes; README, "Speed").

    Returns:
        A batched, prefetched `tf.data.Dataset` of float32 images `[batch,
        h, w, c]` at `value_range` (or `(images, labels)` pairs).

    Raises:
        DataError: in one line, for a source that cannot be read, an
            unknown split, or options that cannot apply (`value_range`
            other than `(0, 1)` or `(-1, 1)`, `channels` other than 1 or 3,
            a `batch_size` below 1).
        TypeError: for an option neither `ReadOptions` nor `make_dataset` takes.

    Example:

    >>> train = aekeras.data.load("mnist", "train", value_range=(-1, 1))
    >>> model.fit(train, epochs=20)
    """
    import dataclasses

    from aekeras.data.pipeline import make_dataset
    from aekeras.data.sources import ReadOptions, open_source

    reading = {f.name for f in dataclasses.fields(ReadOptions)}
    opened = open_source(source, **{k: v for k, v in options.items() if k in reading})
    shuffle = split == "train" if shuffle is None else shuffle
    batching = {k: v for k, v in options.items() if k not in reading}
    examples = opened.examples(split, limit=batching.get("limit"))
    return make_dataset(examples, opened.spec, shuffle=shuffle, **batching)


def load_arrays(source, split, **read_options):
    """A whole split in memory: `(images, labels)`.

    Images are float32 `[n, h, w, c]` on [0, 1]; labels int64 `[n]`, or
    `None` for an unlabelled source. See `load` for the sources and the
    `read_options` (`data_dir`, `image_size`, `channels`, `test_fraction`,
    `memory_limit`); problems with the data raise `DataError`.
    """
    from aekeras.data.sources import open_source

    opened = open_source(source, **read_options)
    return arrays_of(opened.examples(split), opened.spec)


def arrays_of(examples, spec, *, unit=True):
    """`(images on [0, 1], labels)` of a split's `Examples`, files decoded at `spec`'s shape.

    `unit=False`: the images as stored (8-bit pixels stay uint8, a quarter
    of float32's memory), for takers that scale them a batch at a time.
    """
    from aekeras.data.pipeline import unit_scale
    from aekeras.data.sources import decode_files

    images = (
        examples.images
        if examples.files is None
        else decode_files(examples.files, spec, resize=examples.resize)
    )
    return (unit_scale(images) if unit else images), examples.labels


__all__ = [
    "CHANNELS",
    "DATASETS",
    "DATA_DIR_ENV",
    "DEFAULT_SPEC",
    "DataError",
    "ImageSpec",
    "ReadOptions",
    "SPLITS",
    "Source",
    "UNIT_RANGE",
    "VALUE_RANGES",
    "arrays_of",
    "check_source",
    "idx_paths",
    "load",
    "load_arrays",
    "make_dataset",
    "naming_undecodable_files",
    "open_source",
    "parse_idx",
    "read_idx",
    "to_model_scale",
    "to_unit_scale",
    "unit_scale",
]
