"""The built-in data sets, MNIST and Fashion-MNIST: their description and their files.

This is the one place that knows their 28x28 grey images and ten classes.
"""

import dataclasses
import os
from pathlib import Path

from aekeras.data.spec import ImageSpec
from aekeras.errors import DataError

DATA_DIR_ENV = "AEKERAS_DATA_DIR"
_TFDS_MANUAL_DIR = Path("~/tensorflow_datasets/downloads/manual")


def data_dir_from_environment():
    """`$AEKERAS_DATA_DIR` as a Path, or None where it is unset; DataError where it names no folder."""
    env = os.environ.get(DATA_DIR_ENV)
    if not env:
        return None
    env = Path(env).expanduser()
    if not env.is_dir():
        raise DataError(f"${DATA_DIR_ENV}={env}: data folder does not exist")
    return env


@dataclasses.dataclass(frozen=True)
class BuiltinDataset:
    """A data set aekeras reads from its four IDX files.

    Args:
        name: its name, which is also its TFDS name.
        shape: one image's shape.
        class_names: the ten classes, in label order.
        system_dir: where an operating-system package installs its files.
    """

    name: str
    shape: tuple
    class_names: tuple
    system_dir: Path = None

    @property
    def spec(self):
        return ImageSpec(self.shape, class_names=self.class_names, source=self.name)

    def local_folders(self):
        """Yields `(description, folder)` for each implicit local source, in order.

        `$AEKERAS_DATA_DIR/<name>/` (for MNIST also the folder itself), the
        TFDS manual-download folder, then the system package's folder.

        Raises:
            DataError: if `$AEKERAS_DATA_DIR` names a folder that does not exist.
        """
        env = data_dir_from_environment()
        if env is not None:
            yield f"${DATA_DIR_ENV}/{self.name}", env / self.name
            if self is MNIST:
                yield f"${DATA_DIR_ENV}", env
        manual = _TFDS_MANUAL_DIR.expanduser()
        yield "TFDS manual folder", manual / self.name
        yield "TFDS manual folder", manual
        if self.system_dir is not None:
            yield "Debian dataset-fashion-mnist", self.system_dir


MNIST = BuiltinDataset("mnist", (28, 28, 1), tuple("0123456789"))
FASHION_MNIST = BuiltinDataset(
    "fashion_mnist",
    (28, 28, 1),
    (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    Path("/usr/share/datasets/fashion-mnist"),
)
BUILTIN = {d.name: d for d in (MNIST, FASHION_MNIST)}

# What a model is built for when it is given no image spec: the lecture's MNIST.
DEFAULT_SPEC = MNIST.spec
