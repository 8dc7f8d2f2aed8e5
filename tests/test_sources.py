"""Data sources other than the built-in IDX files: folders, arrays, TFDS; and bad input."""

import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from aekeras import data
from aekeras.data import DataError, ImageSpec
from aekeras.data.examples import HOLDOUT_SEED


def test_npz_without_test_split_holds_out_a_fixed_share(digits_npz):
    from sklearn.datasets import load_digits

    source = data.open_source(digits_npz)
    assert source.spec == ImageSpec((8, 8, 1), num_classes=10, source=str(digits_npz))
    train, test = (data.load_arrays(digits_npz, split) for split in ("train", "test"))
    assert len(test[0]) == 180 and len(train[0]) == 1797 - 180
    # The held-out images are the seeded choice, the same on every run, and
    # the labels travel with their images.
    order = np.random.default_rng(HOLDOUT_SEED).permutation(1797)
    original = load_digits()
    np.testing.assert_allclose(
        test[0][..., 0], np.round(original.images[order[:180]] * 255 / 16) / 255, atol=1e-7
    )
    np.testing.assert_array_equal(test[1], original.target[order[:180]])
    np.testing.assert_array_equal(train[1], original.target[order[180:]])
    again = data.load_arrays(digits_npz, "test", test_fraction=0.1)
    np.testing.assert_array_equal(again[0], test[0])
    assert len(data.load_arrays(digits_npz, "test", test_fraction=0.25)[0]) == 449


def test_resize_and_channels_apply_to_every_source(digits_npz):
    source = data.open_source(digits_npz, image_size=(16, 12), channels=3)
    assert source.spec.shape == (16, 12, 3)
    images, _ = data.load_arrays(digits_npz, "test", image_size=(16, 12), channels=3)
    assert images.shape == (180, 16, 12, 3) and 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey repeated
    batch = next(iter(data.load(digits_npz, "train", batch_size=32, image_size=(16, 12), channels=3)))
    assert batch.shape == (32, 16, 12, 3)
    back = data.load_arrays(digits_npz, "test", image_size=(16, 12), channels=1)[0]
    np.testing.assert_allclose(back[..., 0], images[..., 0], atol=1 / 255)


def test_rgb_png_folder_with_train_and_test(rgb_crops_folder, rgb_crops):
    source = data.open_source(rgb_crops_folder)
    assert source.spec == ImageSpec((32, 32, 3), source=str(rgb_crops_folder))
    for split, original in zip(("train", "test"), rgb_crops, strict=True):
        images, labels = data.load_arrays(rgb_crops_folder, split)
        assert labels is None
        # PNG is lossless: the pixels are the photographs' own.
        np.testing.assert_array_equal(np.round(images * 255).astype(np.uint8), original)


def test_a_train_folder_alone_is_the_training_split_and_a_test_folder_alone_is_refused(
    rgb_crops_folder, rgb_crops, tmp_path
):
    alone = tmp_path / "crops"
    shutil.copytree(rgb_crops_folder / "train", alone / "train")
    source = data.open_source(alone, test_fraction=0.25)
    assert source.spec.num_classes is None  # not one class named "train"
    train, test = (data.load_arrays(alone, split, test_fraction=0.25)[0] for split in ("train", "test"))
    assert len(train) + len(test) == len(rgb_crops[0]) and len(test) == round(0.25 * len(rgb_crops[0]))
    shutil.move(alone / "train", alone / "test")
    with pytest.raises(DataError, match=r"a test/ folder but no train/ \(expected both"):
        data.open_source(alone)


def test_class_folders_give_labels_by_sorted_folder_name(fashion_png_folder):
    source = data.open_source(fashion_png_folder, memory_limit=1)  # keeps the file names
    names = tuple(sorted(p.name for p in fashion_png_folder.iterdir()))
    assert source.spec.shape == (28, 28, 1) and source.spec.class_names == names
    train, test = source.examples("train"), source.examples("test")
    assert len(train) == 1350 and len(test) == 150
    for examples in (train, test):
        folders = [names.index(Path(f).parent.name) for f in examples.files]
        np.testing.assert_array_equal(examples.labels, folders)
    assert sorted(np.bincount(np.concatenate([train.labels, test.labels]))) == [150] * 10


def test_large_folders_stream_and_give_the_same_batches(fashion_png_folder):
    in_memory = data.open_source(fashion_png_folder)
    streamed = data.open_source(fashion_png_folder, memory_limit=1)
    assert streamed.examples("train").files is not None
    assert in_memory.examples("train").images is not None
    for split in ("train", "test"):
        kwargs = dict(batch_size=100, labels=True, seed=3, shuffle=True)
        a = data.make_dataset(in_memory.examples(split), in_memory.spec, **kwargs)
        b = data.make_dataset(streamed.examples(split), streamed.spec, **kwargs)
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_every_image_format_decodes_to_its_pixels(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    for suffix in ("png", "bmp", "gif", "jpg"):
        Image.fromarray(pixels).save(tmp_path / f"image.{suffix}")
    images, _ = data.load_arrays(tmp_path, "train", test_fraction=0.25)
    test, _ = data.load_arrays(tmp_path, "test", test_fraction=0.25)
    decoded = {}
    for image in np.concatenate([images, test]):
        decoded[len(decoded)] = np.round(image * 255).astype(int)
    lossless = [np.asarray(Image.open(tmp_path / f"image.{s}").convert("RGB")) for s in ("png", "bmp", "gif")]
    for expected in lossless:
        assert any(np.array_equal(d, expected) for d in decoded.values())
    jpeg = np.asarray(Image.open(tmp_path / "image.jpg").convert("RGB")).astype(int)
    assert min(np.abs(d - jpeg).max() for d in decoded.values()) <= 8  # decoders round differently


def test_folders_of_differing_sizes_need_image_size(tmp_path):
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((20, 8), 255, np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(
        DataError, match=r"images differ in size \(10x12 in .*a.png, 20x8 in .*b.png\); pass --image-size"
    ):
        data.open_source(tmp_path)
    images, _ = data.load_arrays(tmp_path, "train", image_size=(16, 16), test_fraction=0.5)
    assert images.shape == (1, 16, 16, 1)


def test_a_folder_mixing_sizes_resizes_only_the_files_off_size(tmp_path):
    """Files already at --image-size come through as stored; the others are resized, in the same batch."""
    from sklearn.datasets import load_sample_images

    photo = load_sample_images().images[0]
    at_size, larger = photo[100:124, 200:224], photo[200:248, 300:348]
    Image.fromarray(at_size).save(tmp_path / "a.png")
    Image.fromarray(larger).save(tmp_path / "b.png")
    source = data.open_source(tmp_path, image_size=(24, 24), channels=3)
    images = [source.examples(split).images[0] for split in ("train", "test")]  # one image each
    kept, resized = images if np.array_equal(images[0], at_size) else images[::-1]
    np.testing.assert_array_equal(kept, at_size)
    expected = tf.image.resize(larger.astype(np.float32), (24, 24), antialias=True)
    np.testing.assert_array_equal(resized, np.round(np.clip(expected.numpy(), 0, 255)).astype(np.uint8))


def test_prepared_tfds_data_set_reads_offline(tfds_digits_dir):
    from sklearn.datasets import load_digits

    data_dir, name = tfds_digits_dir
    source = data.open_source(f"tfds:{name}", data_dir=str(data_dir))
    assert source.spec.shape == (8, 8, 1) and source.spec.class_names == tuple(str(i) for i in range(10))
    images, labels = data.load_arrays(f"tfds:{name}", "test", data_dir=str(data_dir))
    assert len(images) == 297
    original = load_digits()
    # TFDS shuffles examples when it prepares them; compare as sets of rows.
    expected = {
        (tuple(np.round(i * 255 / 16).astype(int).ravel()), t)
        for i, t in zip(original.images[1500:], original.target[1500:], strict=True)
    }
    got = {
        (tuple(np.round(i[..., 0] * 255).astype(int).ravel()), t) for i, t in zip(images, labels, strict=True)
    }
    assert got == expected


def test_unprepared_tfds_data_set_fails_at_once_and_writes_nothing(tmp_path):
    started = time.monotonic()
    with pytest.raises(DataError, match="tfds:cifar10: not prepared in .*, and there is no network"):
        data.open_source("tfds:cifar10", data_dir=str(tmp_path / "tfds"))
    # Offline, TFDS's own download retries for minutes; here the network
    # check answers within its 3 s timeout.
    assert time.monotonic() - started < 30
    assert not (tmp_path / "tfds").exists()
    with pytest.raises(DataError, match="tfds:no_such_set_anywhere: no such TFDS data set"):
        data.open_source("tfds:no_such_set_anywhere")


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _truncated(path):
    """`path` cut to its first half, as an interrupted copy leaves it."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing", "missing: no such file or folder"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "empty: no images (expected PNG, JPEG, BMP or GIF"),
        (
            lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt",
            "notes.txt: neither a folder of images nor an .npz/.npy",
        ),
        (
            lambda d: _write_npz(d / "rank.npz", images=np.zeros((4, 5), np.uint8)),
            r"images of shape \(4, 5\) \(expected \[n, height, width\]",
        ),
        (
            lambda d: _write_npz(d / "int.npz", images=np.zeros((4, 5, 5), np.int64)),
            "images of dtype int64 (expected uint8 0-255 or float in [0, 1])",
        ),
        (
            lambda d: _write_npz(d / "nan.npz", images=np.full((4, 5, 5), np.nan, np.float32)),
            "hold NaN or infinite values",
        ),
        (
            lambda d: _write_npz(d / "inf.npz", images=np.full((4, 5, 5), np.inf, np.float64)),
            "hold NaN or infinite values",
        ),
        (
            lambda d: _write_npz(d / "scale.npz", images=np.full((4, 5, 5), 255.0)),
            r"float images range over \[255, 255\] \(expected \[0, 1\]",
        ),
        (
            lambda d: _write_npz(d / "labels.npz", images=np.zeros((4, 5, 5), np.uint8), labels=np.arange(3)),
            "3 labels for 4 images",
        ),
        (
            lambda d: _write_npz(d / "two.npz", a=np.zeros((4, 5, 5), np.uint8), b=np.zeros(4)),
            r"holds \['a', 'b'\] \(expected an array named 'images'",
        ),
        (
            lambda d: (d / "notes.npz").write_text("hi") and d / "notes.npz",
            "notes.npz: not a .npz archive (expected a zip of arrays, as numpy.savez writes)",
        ),
        (
            lambda d: _truncated(_write_npz(d / "cut.npz", images=np.zeros((4, 5, 5), np.uint8))),
            "cut.npz: not a .npz archive",
        ),
    ],
)
def test_bad_sources_raise_one_line_naming_the_problem(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DataError) as error:
        data.load_arrays(path, "train")
    assert message in str(error.value) or re.search(message, str(error.value))
    assert "\n" not in str(error.value)


def test_a_corrupt_image_is_named(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 8), i * 50, np.uint8)).save(tmp_path / f"{i}.png")
    good = (tmp_path / "1.png").read_bytes()
    (tmp_path / "1.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"1.png: not a readable image"):
        data.open_source(tmp_path)
    (tmp_path / "1.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"1.png: not a readable image"):
        data.open_source(tmp_path)


def test_mixed_layout_and_bad_options(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "loose.png")
    (tmp_path / "cats").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "cats" / "a.png")
    with pytest.raises(DataError, match="holds both image files and subfolders of images"):
        data.open_source(tmp_path)
    with pytest.raises(DataError, match="channels must be 1 or 3, got 2"):
        data.open_source(tmp_path / "cats", channels=2)
    with pytest.raises(DataError, match="test_fraction must be between 0 and 1, got 1.5"):
        data.open_source(tmp_path / "cats", test_fraction=1.5)
    with pytest.raises(DataError, match="1 examples are too few to hold out a test split"):
        data.load_arrays(tmp_path / "cats", "test")
