"""Real data that no one here made, in the forms users bring it: fixtures.

- scikit-learn's `load_digits` (8x8 grey digits, 0-16) as an `.npz`;
- 32x32 RGB crops of the two photographs scikit-learn ships
  (`load_sample_images`), as a PNG folder with train/ and test/ folders
  (test crops from the bottom fifth of each photograph, never overlapping a
  training crop);
- Fashion-MNIST (Debian's `dataset-fashion-mnist`) as a PNG folder with one
  subfolder per class;
- scikit-learn's digits as a prepared TFDS data set, read back offline.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CROP = 32
PATCH = 16


@pytest.fixture(scope="session")
def fashion_dir():
    if not FASHION_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
    return FASHION_DIR


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory):
    """scikit-learn's 1,797 8x8 digits as uint8 0-255 with labels; no test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    images = np.round(digits.images * 255 / 16).astype(np.uint8)
    np.savez(path, images=images, labels=digits.target)
    return path


def _crops(photo, stride, size=CROP):
    height, width = photo.shape[:2]
    return np.stack(
        [
            photo[i : i + size, j : j + size]
            for i in range(0, height - size + 1, stride)
            for j in range(0, width - size + 1, stride)
        ]
    )


@pytest.fixture(scope="session")
def rgb_crops():
    """`(train, test)` uint8 32x32x3 crops of scikit-learn's two photographs.

    Training crops (stride 16) come from the top four fifths of each photo,
    test crops (stride 32) from the bottom fifth: held out, not overlapping.
    """
    from sklearn.datasets import load_sample_images

    train, test = [], []
    for photo in load_sample_images().images:
        split = int(photo.shape[0] * 0.8)
        train.append(_crops(photo[:split], 16))
        test.append(_crops(photo[split:], CROP))
    return np.concatenate(train), np.concatenate(test)


@pytest.fixture(scope="session")
def rgb_patches():
    """`(train, test)` float32 16x16x3 patches on [0, 1] of scikit-learn's two photographs.

    As `rgb_crops`, the top four fifths train and the bottom fifth tests;
    training patches every 8 pixels with their mirror images, test patches
    every 4 (12,956 training and 5,652 test patches).
    """
    from sklearn.datasets import load_sample_images

    train, test = [], []
    for photo in load_sample_images().images:
        split = int(photo.shape[0] * 0.8)
        train.append(_crops(photo[:split], 8, PATCH))
        test.append(_crops(photo[split:], 4, PATCH))
    train = np.concatenate(train)
    train = np.concatenate([train, train[:, :, ::-1]])
    return train.astype(np.float32) / 255, np.concatenate(test).astype(np.float32) / 255


def _write_pngs(folder, images):
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(np.squeeze(image)).save(folder / f"{i:05d}.png")


@pytest.fixture(scope="session")
def rgb_crops_folder(tmp_path_factory, rgb_crops):
    """The crops as PNG files: `train/` and `test/`, flat (unlabelled)."""
    folder = tmp_path_factory.mktemp("crops") / "crops"
    for split, images in zip(("train", "test"), rgb_crops, strict=True):
        _write_pngs(folder / split, images)
    return folder


@pytest.fixture(scope="session")
def fashion_png_folder(tmp_path_factory, fashion_dir):
    """150 Fashion-MNIST training images per class as PNGs, one subfolder per class name."""
    from aekeras.data.builtin import FASHION_MNIST
    from aekeras.data.idx import read_idx_split

    images, labels = read_idx_split(fashion_dir, "train", (28, 28), 10)
    folder = tmp_path_factory.mktemp("fashion") / "fashion"
    for label, name in enumerate(FASHION_MNIST.class_names):
        _write_pngs(folder / name.replace("/", "-"), images[labels == label][:150])
    return folder


@pytest.fixture(scope="session")
def tfds_digits_dir(tmp_path_factory):
    """A TFDS data folder holding scikit-learn's digits, prepared by TFDS itself.

    Returns `(data_dir, name)`; the data set is read back by name, offline,
    without its builder's code (TFDS's read-only builder).
    """
    import tensorflow_datasets as tfds
    from sklearn.datasets import load_digits

    class SklearnDigits(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 1)),
                        "label": tfds.features.ClassLabel(num_classes=10),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            digits = load_digits()
            images = np.round(digits.images * 255 / 16).astype(np.uint8)[..., np.newaxis]
            return {
                "train": self._generate_examples(images[:1500], digits.target[:1500]),
                "test": self._generate_examples(images[1500:], digits.target[1500:]),
            }

        def _generate_examples(self, images, labels):
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                yield i, {"image": image, "label": int(label)}

    data_dir = tmp_path_factory.mktemp("tfds")
    builder = SklearnDigits(data_dir=str(data_dir))
    builder.download_and_prepare()
    return data_dir, builder.name
