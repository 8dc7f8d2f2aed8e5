"""Images for aekeras models, from any source, as `tf.data` pipelines.

`load(source, split)` opens a source (a built-in name, `tfds:NAME`, a
folder of images or an `.npz`/`.npy` file) and returns a batched pipeline of
float32 images; `open_source(source)` gives the source itself, with its
`ImageSpec` (`.spec`) and its splits (`.examples(split)`). Every problem
with the data is a `DataError` with a one-line message.
"""

import importlib

# Names and the modules that define them: loaded when first used, so that
# the command line can read the built-in names without TensorFlow.
_LAZY = {
    "BUILTIN": "builtin", "DATA_DIR_ENV": "builtin", "DEFAULT_SPEC": "builtin",
    "idx_paths": "idx", "parse_idx": "idx", "read_idx": "idx",
    "make_dataset": "pipeline", "unit_scale": "pipeline",
    "SPLITS": "sources", "ReadOptions": "sources", "Source": "sources", "decode_files": "sources",
    "open_source": "sources",
    "UNIT_RANGE": "spec", "VALUE_RANGES": "spec", "ImageSpec": "spec", "to_model_scale": "spec",
    "to_unit_scale": "spec",
}
DATASETS = ("mnist", "fashion_mnist")  # aekeras.data.builtin describes them


def __getattr__(name):
    if name == "DataError":
        from aekeras.errors import DataError

        return DataError
    if name in _LAZY:
        return getattr(importlib.import_module(f"aekeras.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'aekeras.data' has no attribute {name!r}")




def load(
    source,
    split,
    *,
    batch_size=256,
    shuffle=None,
    value_range=(0.0, 1.0),
    flatten=False,
    labels=False,
    seed=0,
    limit=None,
    drop_remainder=False,
    **read_options,
):
    """One split of a data source as a `tf.data.Dataset` ready for `model.fit`.

    Sources:

    - `"mnist"`, `"fashion_mnist"`: four IDX files, found in `data_dir`,
      else `$AEKERAS_DATA_DIR` (`<dir>/<name>/`, or for MNIST the folder
      itself), the TFDS manual-download folder, Debian's
      `/usr/share/datasets/fashion-mnist/`, then a prepared TFDS copy.
    - `"tfds:NAME"`: any TFDS image data set, prepared in `data_dir` (or
      TFDS's default folder); downloaded only where a network answers.
    - a folder of PNG, JPEG, BMP or GIF images: flat (unlabelled), one
      subfolder per class (labels from the sorted subfolder names), or
      `train/` and `test/` folders of either form.
    - an `.npz` file holding `images` (or a single array) and optionally
      `labels`, `test_images`, `test_labels`; or an `.npy` file of images.
      uint8 0-255 or float [0, 1], `[n, h, w]` or `[n, h, w, c]`.

    A source without a test split holds out `test_fraction` of its training
    examples, the same ones on every run.

    Args:
        source: see above.
        split: `"train"` or `"test"`.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch; defaults to `split == "train"`.
        value_range: `(0, 1)` or `(-1, 1)`, the scale of the pixels.
        flatten: yield `[batch, h * w * c]` instead of `[batch, h, w, c]`.
        labels: yield `(images, labels)` pairs (the source must have labels).
        seed: shuffle seed; the same seed gives the same order.
        limit: keep only the first `limit` examples of the split.
        drop_remainder: drop the last, smaller batch.
        **read_options: `data_dir`, `image_size`, `channels`,
            `test_fraction`, `memory_limit`; see `ReadOptions`.

    Example:

    >>> train = aekeras.data.load("mnist", "train", value_range=(-1, 1))
    >>> model.fit(train, epochs=20)
    """
    from aekeras.data.pipeline import make_dataset
    from aekeras.data.sources import open_source

    opened = open_source(source, **read_options)
    return make_dataset(
        opened.examples(split), opened.spec, batch_size=batch_size,
        shuffle=split == "train" if shuffle is None else shuffle, seed=seed,
        value_range=value_range, flatten=flatten, labels=labels,
        drop_remainder=drop_remainder, limit=limit,
    )


def load_arrays(source, split, **read_options):
    """A whole split in memory: `(images, labels)`.

    Images are float32 `[n, h, w, c]` on [0, 1]; labels int64 `[n]`, or
    `None` for an unlabelled source. See `load` for the sources and options.
    """
    from aekeras.data.pipeline import unit_scale
    from aekeras.data.sources import decode_files, open_source

    opened = open_source(source, **read_options)
    examples = opened.examples(split)
    images = examples.images if examples.files is None else decode_files(examples.files, opened.spec)
    return unit_scale(images), examples.labels


__all__ = [
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
    "idx_paths",
    "load",
    "load_arrays",
    "make_dataset",
    "open_source",
    "parse_idx",
    "read_idx",
    "to_model_scale",
    "to_unit_scale",
    "unit_scale",
]
