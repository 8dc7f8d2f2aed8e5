"""Shared fixtures: the real MNIST files and small pipelines over them."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The offline MNIST copy beside the project; CI sets AEKERAS_DATA_DIR to it.
os.environ.setdefault("AEKERAS_DATA_DIR", str(REPO.parent / "shared" / "data" / "mnist"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The test processes run oneDNN's kernels, as `aekeras train` runs the convolutional models
# (`registry.onednn_environment`) and TensorFlow runs every model on CPUs with AVX-512-class
# features. On the AVX2 AMD EPYC where TensorFlow leaves them off, the conv-heavy analysis
# files took 130 and 160 s on them against 386 and 314 s. The commands the tests start get
# the environment as it was.
_USERS_ONEDNN = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import tensorflow as tf  # noqa: E402

if _USERS_ONEDNN is None:
    del os.environ["TF_ENABLE_ONEDNN_OPTS"]  # read as TensorFlow loaded, above

# Two logical CPUs, so distribution tests can run a 2-replica strategy; this
# must happen before TensorFlow initialises its devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

from real_data import (  # noqa: E402, F401 - fixtures
    digits_npz,
    fashion_dir,
    fashion_png_folder,
    rgb_crops,
    rgb_crops_folder,
    rgb_patches,
    tfds_digits_dir,
)
from test_case import MODEL_NAMES, SMALL  # noqa: E402

import aekeras  # noqa: E402
import aekeras.models  # noqa: E402, F401 - registers the classes with Keras
from aekeras import registry  # noqa: E402


@pytest.fixture(scope="session")
def mnist_dir():
    folder = Path(os.environ["AEKERAS_DATA_DIR"])
    if (
        not (folder / "train-images-idx3-ubyte.gz").exists()
        and not (folder / "train-images-idx3-ubyte").exists()
    ):
        pytest.fail(f"MNIST IDX files not found in {folder}; set AEKERAS_DATA_DIR")
    return folder


@pytest.fixture(scope="session")
def mnist_test_arrays(mnist_dir):
    return aekeras.data.load_arrays("mnist", "test", data_dir=mnist_dir)


def _trained_models():
    """One small model of each registered kind, for MNIST: name -> model."""
    return {name: registry.build_model(name, None, seed=0, **SMALL.get(name, {})) for name in MODEL_NAMES}


@pytest.fixture(scope="session")
def exported_models(tmp_path_factory, mnist_dir):
    """Every registered kind, each trained one epoch on real MNIST and exported.

    Returns (out folder, {name: (keras model, version folder)}).
    """
    import keras

    from aekeras import export

    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("saved_models")
    exported = {}
    for name, model in _trained_models().items():
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        train = aekeras.data.load(
            "mnist",
            "train",
            limit=2048,
            batch_size=128,
            value_range=model.value_range,
            labels=model.conditioned,
            data_dir=mnist_dir,
        )
        model.fit(train, epochs=1, verbose=0)
        exported[name] = (model, export.saved_model(model, out, name))
    return out, exported


@pytest.fixture(scope="session")
def digits(mnist_test_arrays):
    """2,000 real test digits, float32 on the [0, 1] scale of the signatures."""
    return mnist_test_arrays[0][:2000]


@pytest.fixture(scope="session")
def mnist_train_small(mnist_dir):
    """4,000 real training digits on [0, 1] with their labels."""
    images, labels = aekeras.data.load_arrays("mnist", "train", data_dir=mnist_dir)
    return images[:4000], labels[:4000]


@pytest.fixture(scope="session")
def trained_dense(mnist_train_small):
    """The lecture's dense model, briefly trained on [-1, 1] digits."""
    import keras

    keras.utils.set_random_seed(0)
    model = aekeras.models.DenseAutoencoder(latent_dim=30)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(mnist_train_small[0] * 2 - 1, epochs=5, batch_size=128, verbose=0)
    return model


@pytest.fixture(scope="session")
def trained_vae2(mnist_train_small):
    """A 2-D latent VAE, briefly trained."""
    import keras

    keras.utils.set_random_seed(0)
    model = aekeras.models.VAE(latent_dim=2, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(mnist_train_small[0], epochs=5, batch_size=128, verbose=0)
    return model


@pytest.fixture(scope="session")
def mnist_train_arrays(mnist_dir):
    """All 60,000 real training digits on [0, 1] with their labels."""
    return aekeras.data.load_arrays("mnist", "train", data_dir=mnist_dir)


@pytest.fixture(scope="session")
def conv_denoiser_30k(mnist_train_arrays):
    """The report's conv denoiser (lecture's dropout mask), 2 epochs on the first 30,000 training digits."""
    import keras

    keras.utils.set_random_seed(0)
    model = aekeras.presets.conv_denoiser(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(mnist_train_arrays[0][:30000], epochs=2, batch_size=256, verbose=0)
    return model


@pytest.fixture
def ctrl_c_at_its_default():
    """SIGINT raising KeyboardInterrupt, as at a terminal (pytest-xdist's workers ignore it)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def interrupt_after_the_first_epoch(monkeypatch):
    """`interrupt(config)`: trains `config`, pressing Ctrl-C as its first epoch ends (after its backup)."""
    import keras

    from aekeras.errors import TrainingInterrupted
    from aekeras.training import runner, train

    class CtrlCAfterTheFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    def interrupt(config):
        run_callbacks = runner.run_callbacks
        with monkeypatch.context() as patched:
            patched.setattr(
                runner, "run_callbacks", lambda *a, **k: [*run_callbacks(*a, **k), CtrlCAfterTheFirstEpoch()]
            )
            with pytest.raises(TrainingInterrupted):
                train(config)

    return interrupt
