"""TensorBoard pictures for any `fit` of an aekeras model: reconstructions and the latent projector.

`ReconstructionImages` writes a fixed grid every epoch: the images, then
(denoising models) the corrupted inputs, then the reconstructions; VAEs also
decode the same prior draws every epoch, so their samples can be watched
improving. `LatentProjector` writes, when training ends, the codes of up to
a few thousand images with a sprite and label metadata, so TensorBoard's
embedding projector shows them. `aekeras train` adds both to every run
(`runs/NAME/logs/images` and `runs/NAME/logs/projector`).

Example:

>>> model.fit(train, epochs=20, callbacks=[
...     ReconstructionImages("logs/images", test_images[:8]),
...     LatentProjector("logs/projector", test_images[:1000], test_labels[:1000]),
... ])
"""

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

from aekeras.data.pipeline import check_image_values, unit_scale

# TensorBoard's projector reads sprites up to 8192 pixels a side.
MAX_SPRITE_SIDE = 8192
# The name a TF2 checkpoint gives `tf.train.Checkpoint(embedding=...)`.
EMBEDDING_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
# Images the projector's sprite shrinks at a time.
SPRITE_CHUNK = 100


def _unit_images(images):
    """Images as float32 on [0, 1]: uint8 pixels scaled, as every model entry point scales them."""
    return np.asarray(unit_scale(np.asarray(images)), np.float32)


def _pixels_or_unit_images(images):
    """uint8 pixels as they are (their takers scale them a batch at a time), other images as `_unit_images`."""
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else _unit_images(images)


def _pictures(batch):
    """A batch as pictures `[n, h, w, c]`: a flat model's vectors `[n, size]` as one-pixel-high strips."""
    batch = np.asarray(batch, np.float32)
    return batch.reshape(len(batch), 1, -1, 1) if batch.ndim == 2 else batch


def image_grid(rows):
    """One picture of equal-sized image batches on [0, 1]: a row per batch, `[1, rows*h, n*w, c]`."""
    grid = _tiled(np.stack([_pictures(r) for r in rows]))
    return np.clip(_viewable(grid), 0.0, 1.0)[np.newaxis]


def _tiled(stacked):
    """Rows of pictures `[rows, n, h, w, c]` as one picture, `[rows*h, n*w, c]`."""
    count, n, h, w, c = stacked.shape
    return stacked.transpose(0, 2, 1, 3, 4).reshape(count * h, n * w, c)


def _viewable(pictures):
    """Pictures a PNG shows as they are: grey, RGB or RGBA; any other channel count by its first channel, as grey.

    Two channels would be drawn as grey and alpha, and five or more cannot
    be encoded at all (fit raised after its first epoch).
    """
    return pictures if pictures.shape[-1] in (1, 3, 4) else pictures[..., :1]


class ReconstructionImages(keras.callbacks.Callback):
    """Every epoch, a grid of fixed images beside their reconstructions, for TensorBoard.

    Args:
        log_dir: the folder for the event files (a run of its own in
            TensorBoard).
        images: the images to show, on [0, 1] or uint8 pixels, at the model's shape (8 or so).
        num_samples: a VAE's prior draws shown beside them (the same draws
            every epoch; a conditional VAE's of classes 0, 1, ... in turn);
            0 for none.
        seed: seeds those draws.
        labels: the images' labels, for models that read them.
    """

    def __init__(self, log_dir, images, num_samples=8, seed=0, *, labels=None):
        super().__init__()
        self.log_dir = str(log_dir)
        self.images = _unit_images(images)
        self.labels = labels
        self.num_samples = num_samples
        # None: a seed drawn once, so every epoch still decodes the same draws.
        self.seed = int(np.random.default_rng().integers(2**31)) if seed is None else seed
        self._writer = None

    def on_train_begin(self, logs=None):
        _check_fits_model(self.model, self.images, self.labels, type(self).__name__)
        if self.num_samples and self.model.has_prior:
            # Now, not once an epoch is spent: a variant's own `sample` must take `seed=`.
            self.model.sample(1, seed=self.seed)
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        pictures = {"reconstructions": image_grid(self.model.picture_rows(self.images, self.labels))}
        if self.num_samples and self.model.has_prior:
            pictures["prior_samples"] = image_grid([self.model.sample(self.num_samples, seed=self.seed)])
        with self._writer.as_default():
            for name, picture in pictures.items():
                tf.summary.image(name, picture, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def _sprite(images):
    """A square sprite of the images (grey ones as RGB), shrunk to fit TensorBoard's limit, as PNG."""
    columns = math.ceil(math.sqrt(len(images)))
    height, width = _pictures(images[:1]).shape[1:3]
    scale = min(1.0, MAX_SPRITE_SIDE / (columns * max(height, width)))
    size = (max(1, int(height * scale)), max(1, int(width * scale)))
    # Built as 8-bit pixels, a chunk of thumbnails at a time: float32
    # copies of all the images and of the whole sprite took 10 GB for 1,000
    # RGB images of 512x512.
    sprite = np.full((columns * columns, *size, 3), 255, np.uint8)  # white where no image is
    for start in range(0, len(images), SPRITE_CHUNK):
        chunk = images[start : start + SPRITE_CHUNK]
        thumbnails = np.clip(_thumbnails(chunk, size), 0.0, 1.0)
        sprite[start : start + len(chunk)] = tf.image.convert_image_dtype(thumbnails, tf.uint8, saturate=True)
    grid = _tiled(sprite.reshape(columns, columns, *size, 3))
    return tf.image.encode_png(grid).numpy(), (size[1], size[0])


def _thumbnails(images, size):
    """Images (on [0, 1], or uint8 pixels) as RGB pictures of `size`, `(height, width)`."""
    pictures = _pictures(_unit_images(images))
    if pictures.shape[1:3] != size:
        pictures = tf.image.resize(pictures, size).numpy()
    return _as_rgb(pictures)


def _as_rgb(images):
    """Pictures as RGB: alpha left out, and any other channel count shown by its first channel, as grey."""
    images = _viewable(images)[..., :3]
    return images if images.shape[-1] == 3 else np.repeat(images, 3, axis=-1)


def _check_fits_model(model, images, labels, taker):
    """Raises ValueError as training begins, not once it is spent, where the images or labels do not fit `model`."""
    check_image_values(images, (0.0, 1.0), f"{taker} takes")
    if not len(images):  # else refused by the model only once an epoch, or the training, was spent
        raise ValueError(f"{taker} got no images (expected at least one to draw)")
    shape = tuple(model.image_spec.shape)
    if images.shape[1:] != shape:
        takes = ", ".join(str(size) for size in ("n", *shape))
        raise ValueError(f"{taker} got images of shape {images.shape}, where the model takes ({takes})")
    model.conditions(labels, len(images))  # a conditioned model's: one in range per image


def _check_projected(images, labels, class_names):
    """Raises ValueError, before any file is written, where the labels do not fit the images or the names."""
    if labels is None:
        return
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be one integer per image ({len(images)}), got {labels.dtype} labels of shape "
            f"{labels.shape}"
        )
    if class_names is not None and len(labels) and not 0 <= labels.min() <= labels.max() < len(class_names):
        raise ValueError(
            f"labels must index class_names (0 to {len(class_names) - 1}), got labels from {labels.min()} to "
            f"{labels.max()}"
        )


def _metadata(count, labels, class_names):
    """The projector's metadata.tsv: one row per image (a header only with two columns)."""
    if labels is None:
        return "".join(f"{i}\n" for i in range(count))
    if class_names is None:
        return "".join(f"{int(label)}\n" for label in labels)
    rows = [f"{int(label)}\t{class_names[int(label)]}\n" for label in labels]
    return "label\tclass\n" + "".join(rows)


def write_projector(model, log_dir, images, labels=None, class_names=None):
    """The codes of `images` (on [0, 1], or uint8 pixels) with sprite and metadata, for TensorBoard's projector.

    Writes `embedding.ckpt-1.*`, `metadata.tsv`, `sprite.png` and
    `projector_config.pbtxt` into `log_dir`; returns the codes, `[n, code size]`.
    """
    images = _pixels_or_unit_images(images)
    _check_projected(images, labels, class_names)
    # Encoded before the folder is made: images the model refuses leave nothing behind.
    codes = model.embed(images, labels=labels).reshape(len(images), -1)
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(embedding=tf.Variable(codes)).save(str(folder / "embedding.ckpt"))
    (folder / "metadata.tsv").write_text(_metadata(len(images), labels, class_names))
    sprite, (width, height) = _sprite(images)
    (folder / "sprite.png").write_bytes(sprite)
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = EMBEDDING_TENSOR
    embedding.metadata_path = "metadata.tsv"
    embedding.sprite.image_path = "sprite.png"
    embedding.sprite.single_image_dim.extend([width, height])
    projector.visualize_embeddings(str(folder), config)
    return codes


class LatentProjector(keras.callbacks.Callback):
    """When training ends, the codes of `images` for TensorBoard's embedding projector.

    Args:
        log_dir: the folder for the projector's files (a run of its own).
        images: images on [0, 1] or uint8 pixels, at the model's shape (1,000 or more shows
            the structure; each becomes one point).
        labels: their integer labels, or None.
        class_names: names of the labels, or None.
    """

    def __init__(self, log_dir, images, labels=None, class_names=None):
        super().__init__()
        _check_projected(images, labels, class_names)  # now, not after the training
        self.log_dir = log_dir
        self.images = images
        self.labels = labels
        self.class_names = class_names

    def on_train_begin(self, logs=None):
        _check_fits_model(self.model, _pixels_or_unit_images(self.images), self.labels, type(self).__name__)

    def on_train_end(self, logs=None):
        write_projector(self.model, self.log_dir, self.images, self.labels, self.class_names)
