"""Shared fixtures: the real MNIST files and small pipelines over them."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The offline MNIST copy beside the project; CI sets AEKERAS_DATA_DIR to it.
os.environ.setdefault("AEKERAS_DATA_DIR", str(REPO.parent / "shared" / "data" / "mnist"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPUs, so distribution tests can run a 2-replica strategy; this
# must happen before TensorFlow initialises its devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

import aekeras  # noqa: E402


@pytest.fixture(scope="session")
def mnist_dir():
    folder = Path(os.environ["AEKERAS_DATA_DIR"])
    if not (folder / "train-images-idx3-ubyte.gz").exists() and not (
        folder / "train-images-idx3-ubyte"
    ).exists():
        pytest.fail(f"MNIST IDX files not found in {folder}; set AEKERAS_DATA_DIR")
    return folder


@pytest.fixture(scope="session")
def mnist_test_arrays(mnist_dir):
    return aekeras.data.load_arrays("mnist", "test", data_dir=mnist_dir)
