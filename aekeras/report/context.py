"""What every part of the report shares: its settings, the data, and cached models."""

import dataclasses
import functools
import hashlib
import inspect
import json
import time
from importlib.metadata import version
from pathlib import Path

import keras
import numpy as np

from aekeras import data, losses, presets
from aekeras.analysis.superresolution import downsample, even_crop, super_resolution_model
from aekeras.progress import fit_verbosity
from aekeras.staging import write_atomically
from aekeras.training.callbacks import fit_stopping_at_a_batch


@dataclasses.dataclass
class ReportSettings:
    """How much the report trains and measures; `quick()` is for tests.

    Args:
        seed: seeds every model, mask and sample.
        train_limit: training images used (None: all 60,000).
        test_limit: test images measured (None: all 10,000).
        dense_epochs: the lecture's standard and denoising models.
        vae_epochs: the 2-D and 20-D VAEs.
        one_class_epochs: each of the ten one-class models.
        pca_epochs: each autoencoder compared with PCA, and the tied
            linear one.
        conv_denoising_epochs: the convolutional denoiser of part 3.
        super_resolution_epochs: the half-size -> full-size model.
        curve_epochs: the 2-D toy denoiser.
        photo_super_resolution_epochs: the most epochs of each photograph's
            super-resolution model (part 11; the best on validation kept).
        photograph_side: part 11 trains and tests on each photograph's
            top-left square of this side (None: the whole photographs).
        pretraining_draws: labelled subsets of 100 images (part 12).
        pretraining_epochs: the most full-batch steps of each classifier
            on them (the number chosen by cross-validation).
        manifold_images: test images whose patch is filled by energy
            minimisation.
        manifold_steps: gradient steps on z for each.
    """

    seed: int = 0
    train_limit: int = None
    test_limit: int = None
    dense_epochs: int = 20
    vae_epochs: int = 30
    one_class_epochs: int = 30
    pca_epochs: int = 20
    conv_denoising_epochs: int = 10
    super_resolution_epochs: int = 10
    curve_epochs: int = 100
    photo_super_resolution_epochs: int = 10
    photograph_side: int = None
    pretraining_draws: int = 5
    pretraining_epochs: int = 200
    manifold_images: int = 500
    manifold_steps: int = 300

    @classmethod
    def quick(cls):
        return cls(
            train_limit=2000,
            test_limit=300,
            dense_epochs=1,
            vae_epochs=1,
            one_class_epochs=1,
            pca_epochs=1,
            conv_denoising_epochs=1,
            super_resolution_epochs=1,
            curve_epochs=5,
            photo_super_resolution_epochs=1,
            photograph_side=256,  # a quarter of the crops; part 11 took 44 of the 119 s
            pretraining_draws=2,
            pretraining_epochs=20,
            manifold_images=20,
            manifold_steps=20,
        )


def _without_names(config):
    """A config less its "name" entries, which Keras numbers per instance."""
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config


def training_code(model):
    """A digest of the source that says how `model` trains: its classes' aekeras modules and the losses.

    Part of a cached model's key. Its config alone misses a change of
    objective: the VAE's likelihood moved from clipped probabilities to
    logits with the same config, and the report went on reusing VAEs
    trained by the old code.
    """
    modules = {inspect.getmodule(cls) for cls in type(model).__mro__}
    modules = {m for m in modules if m is not None and m.__name__.startswith("aekeras.")} | {losses}
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        try:
            digest.update(inspect.getsource(module).encode())
        except (OSError, TypeError):  # installed without sources: the version stands in
            digest.update(f"{module.__name__} {version('aekeras')}".encode())
    return digest.hexdigest()[:12]


def data_digest(*arrays):
    """A digest of the arrays a model trains on (None entries skipped): part of a cached model's key.

    Without it, a report on other data (`--data-dir` at Fashion-MNIST's
    IDX files, say) reused the models cached for MNIST.
    """
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype} {array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _cached(path, name, progress):
    """The model saved at `path`, or None (said) if the file cannot be read back."""
    try:
        return keras.models.load_model(path)
    except Exception as error:  # noqa: BLE001 - any unreadable file is trained again
        progress(f"{name}: cannot read {path} ({type(error).__name__}: {error}); training it again")
        return None


def cached_model(cache_dir, name, build, train_inputs, train_targets, epochs, seed, progress):
    """Trains `build()` on the data, or loads the model cached for the same data, settings and training code.

    The inputs and targets are images on [0, 1]; the model gets them on its
    own scale. A model is saved under a temporary name and renamed into place, so an
    interrupted save leaves no file that a later run would take for it.
    """
    model = build()
    key = json.dumps(
        {
            "config": _without_names(model.get_config()),
            "code": training_code(model),
            "epochs": epochs,
            "seed": seed,
            "data": data_digest(train_inputs, train_targets),
        },
        sort_keys=True,
        default=str,
    )
    path = Path(cache_dir) / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.keras"
    if path.is_file() and (cached := _cached(path, name, progress)) is not None:
        progress(f"{name}: reusing {path}")
        return cached
    progress(f"{name}: training {epochs} epochs")
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    # Keras's bar where it redraws in place (a terminal), else a line an epoch.
    inputs, targets = (
        None if images is None else model.image_spec.to_model_scale(images)
        for images in (train_inputs, train_targets)
    )
    fit_stopping_at_a_batch(model, inputs, targets, epochs=epochs, batch_size=256, verbose=fit_verbosity(1))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, model.save)
    return model


# How the report's texts name the built-in data sets; other sources go by their file's or folder's name.
_DATA_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def _first(opened, split, limit):
    """`(images on [0, 1], labels or None)`: the first `limit` examples of a split, only those decoded."""
    return data.arrays_of(opened.examples(split, limit=limit), opened.spec)


class Context:
    """The settings, the source's splits, the folder figures go to and the shared models.

    `source`, `verbose` and `read_options` are those of
    `aekeras.data.open_source` (`data_dir` among them); MNIST by default.
    Data too thin for every part to run (fewer than 2 training or test
    images, or a side under 2 pixels) is refused in a `DataError`. Models
    are built for the source's `ImageSpec` and trained (or loaded from
    `cache_dir`, by default `out/cache/`) the first time a part asks for one.
    """

    def __init__(
        self,
        out,
        settings,
        data_dir=None,
        progress=print,
        cache_dir=None,
        *,
        source="mnist",
        verbose=False,
        **read_options,
    ):
        self.out = Path(out)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.out / "cache"
        self.settings = settings
        self.data_dir = data_dir
        self.source = source
        self.read_options = {k: v for k, v in {**read_options, "data_dir": data_dir}.items() if v is not None}
        self.started = time.time()
        self._progress = progress
        opened = data.open_source(source, verbose=verbose, **self.read_options)
        self.spec = opened.spec
        self.train_images, self.train_labels = _first(opened, "train", settings.train_limit)
        self.test_images, self.test_labels = _first(opened, "test", settings.test_limit)
        self._check_enough()
        self._models = {}

    def _check_enough(self):
        """DataError unless every part has what it takes: 2 images of each split (part 4 blends two), sides of 2 pixels (part 8 halves them)."""
        height, width = self.spec.shape[:2]
        if min(len(self.train_images), len(self.test_images)) < 2 or min(height, width) < 2:
            raise data.DataError(
                f"{self.spec.source}: {len(self.train_images)} training and {len(self.test_images)} test "
                f"images of {height}x{width} pixels, where the report needs 2 or more of each, of 2x2 pixels "
                "or more"
            )

    @property
    def is_mnist(self):
        """Whether the lecture's data is measured, so that its texts (digits, published results) apply."""
        return self.source == "mnist"

    @property
    def data_name(self):
        """What the texts call the data: MNIST, Fashion-MNIST, or the source's file or folder name."""
        if data.is_named_source(self.source):
            return _DATA_NAMES.get(self.source, self.source)
        return Path(self.source).resolve().name  # resolved: `--source .` names its folder

    @property
    def items(self):
        """What the texts call one image, and one class: a digit on MNIST."""
        return ("digit", "digit") if self.is_mnist else ("image", "class")

    def layer_sizes(self, *hidden):
        """A dense model's widths as the texts write them: `784-30-784` on MNIST."""
        return "-".join(str(width) for width in (self.spec.size, *hidden, self.spec.size))

    def image_size_text(self, shape=None):
        """`28x28`, or `32x48 RGB`: `shape` (by default the source's image shape) in words."""
        height, width, channels = shape or self.spec.shape
        return f"{height}x{width}" + (" RGB" if channels == 3 else "")

    def _source_description(self):
        """What a source other than MNIST adds to `data_description` (MNIST's stays as it was)."""
        return {
            "source": self.spec.source,
            "image_shape": list(self.spec.shape),
            "labelled": self.train_labels is not None,
        }

    @functools.cached_property
    def data_description(self):
        """What the report measured on, for REPORT.md and metrics.json."""
        options = {k: v for k, v in self.read_options.items() if k != "data_dir"}
        return {
            "data_dir": None if self.data_dir is None else str(Path(self.data_dir).absolute()),
            **({} if self.is_mnist else self._source_description()),
            **({"read_options": options} if options else {}),
            "train_images": len(self.train_images),
            "test_images": len(self.test_images),
            "digest": data_digest(self.train_images, self.test_images),
        }

    def labelled_splits(self):
        """`(train_images, train_labels, test_images, test_labels)`, as the analyses take them."""
        return self.train_images, self.train_labels, self.test_images, self.test_labels

    def step(self, message):
        self._progress(f"[report {time.time() - self.started:6.0f}s] {message}")

    @functools.cached_property
    def _recipes(self):
        """name -> (builder, inputs, targets, epochs) of the shared models."""
        seed, settings, images, spec = self.settings.seed, self.settings, self.train_images, self.spec
        # Odd sides lose their last row or column: halved and doubled, they come back even.
        even = even_crop(images)
        low = downsample(even)
        return {
            "standard": (lambda: presets.nyu_dense(spec), images, None, settings.dense_epochs),
            "denoising": (
                lambda: presets.nyu_denoising(spec, seed=seed),
                images,
                None,
                settings.dense_epochs,
            ),
            "conv_denoising": (
                lambda: presets.conv_denoiser(spec, seed=seed),
                images,
                None,
                settings.conv_denoising_epochs,
            ),
            "vae2": (
                lambda: presets.lesson_vae(spec, latent_dim=2, seed=seed),
                images,
                None,
                settings.vae_epochs,
            ),
            "vae20": (
                lambda: presets.lesson_vae(spec, latent_dim=20, seed=seed),
                images,
                None,
                settings.vae_epochs,
            ),
            "super_resolution": (
                lambda: super_resolution_model(low.shape[1:]),
                low,
                even,
                settings.super_resolution_epochs,
            ),
        }

    def model(self, name):
        """A shared model, trained with the report's settings (or loaded from the cache)."""
        if name not in self._models:
            build, inputs, targets, epochs = self._recipes[name]
            self._models[name] = cached_model(
                self.cache_dir, name, build, inputs, targets, epochs, self.settings.seed, self.step
            )
        return self._models[name]
