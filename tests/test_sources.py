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


def test_npz_test_images_of_another_shape_are_converted_when_asked(tmp_path, digits_npz):
    """They were refused even with --channels or --image-size, which convert a folder's."""
    arrays = np.load(digits_npz)
    images, labels = arrays["images"], arrays["labels"]
    rgb_test = tmp_path / "rgb_test.npz"
    as_rgb = np.repeat(images[1500:, ..., None], 3, axis=-1)
    np.savez(
        rgb_test, images=images[:1500], labels=labels[:1500], test_images=as_rgb, test_labels=labels[1500:]
    )
    with pytest.raises(
        DataError,
        match=r"'images' are 1-channel images but 'test_images' 3-channel ones; pass --channels 1 or 3 to "
        r"convert both$",
    ):
        data.load_arrays(rgb_test, "train")
    grey, test_labels = data.load_arrays(rgb_test, "test", channels=1)
    np.testing.assert_allclose(grey[..., 0], images[1500:] / 255, atol=1 / 255 + 1e-6)
    np.testing.assert_array_equal(test_labels, labels[1500:])
    bigger = tmp_path / "bigger_test.npz"
    np.savez(bigger, images=images[:1500], test_images=np.pad(images[1500:], ((0, 0), (1, 1), (1, 1))))
    with pytest.raises(
        DataError, match=r"'images' are 8x8 but 'test_images' 10x10; pass --image-size HxW to resize both$"
    ):
        data.load_arrays(bigger, "train")
    assert data.load_arrays(bigger, "test", image_size=(8, 8))[0].shape == (297, 8, 8, 1)


def test_rgb_png_folder_with_train_and_test(rgb_crops_folder, rgb_crops):
    source = data.open_source(rgb_crops_folder)
    assert source.spec == ImageSpec((32, 32, 3), source=str(rgb_crops_folder))
    for split, original in zip(("train", "test"), rgb_crops, strict=True):
        images, labels = data.load_arrays(rgb_crops_folder, split)
        assert labels is None
        # PNG is lossless: the pixels are the photographs' own (in the split's seeded order).
        decoded = np.round(images * 255).astype(np.uint8)
        assert sorted(map(bytes, decoded)) == sorted(map(bytes, original))


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


def test_every_image_format_decodes_to_the_pixels_pillow_gives(tmp_path):
    from sklearn.datasets import load_sample_images

    pixels = load_sample_images().images[1][200:206, 300:310]
    saved = {"png": {}, "bmp": {}, "gif": {}, "jpg": {"quality": 90}, "webp": {"quality": 80}}
    for suffix, options in saved.items():
        Image.fromarray(pixels).save(tmp_path / f"image.{suffix}", **options)
    Image.fromarray(pixels).save(tmp_path / "image.tiff")  # not a format TensorFlow decodes: left out
    source = data.open_source(tmp_path, test_fraction=0.2, memory_limit=1)
    files = np.concatenate([source.examples(split).files for split in ("train", "test")])
    assert sorted(Path(f).suffix[1:] for f in files) == sorted(saved)
    decoded = np.concatenate(
        [data.load_arrays(tmp_path, split, test_fraction=0.2)[0] for split in ("train", "test")]
    )
    # Lossy JPEG and WebP too: as a client decoding with Pillow sends them.
    for path, image in zip(files, np.round(decoded * 255).astype(np.uint8), strict=True):
        np.testing.assert_array_equal(image, np.asarray(Image.open(path).convert("RGB")), err_msg=path)


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
        (
            lambda d: (d / "empty").mkdir() or d / "empty",
            "empty: no images (expected PNG, JPEG, BMP, GIF or WebP",
        ),
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


@pytest.fixture(scope="module")
def photo_crops():
    """Four 24x24 RGB crops of scikit-learn's photographs, as Pillow images."""
    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images
    crops = [china[100:124, 200:224], china[300:324, 50:74], flower[200:224, 300:324], flower[40:64, 90:114]]
    return [Image.fromarray(crop) for crop in crops]


def test_a_photograph_as_sklearn_ships_it_decodes_as_pillow_decodes_it():
    from sklearn.datasets import load_sample_images

    folder = Path(load_sample_images().filenames[0]).parent  # china.jpg and flower.jpg
    source = data.open_source(folder, memory_limit=1)
    for split in ("train", "test"):
        (path,) = source.examples(split).files
        decoded = np.round(data.load_arrays(folder, split)[0][0] * 255).astype(np.uint8)
        np.testing.assert_array_equal(decoded, np.asarray(Image.open(path).convert("RGB")))


def test_bmps_tensorflow_misreads_are_refused_and_grey_palettes_are_grey(tmp_path, photo_crops):
    rgb = tmp_path / "palette"
    rgb.mkdir()
    for i, crop in enumerate(photo_crops):
        crop.save(rgb / f"{i}.png")
    crop.convert("P", palette=Image.ADAPTIVE).save(rgb / "indexed.bmp")
    # TensorFlow gave the palette's indices as one grey channel: the colours were lost without a word.
    with pytest.raises(
        DataError, match=r"indexed.bmp: an 8-bit palette BMP, which TensorFlow's decoder cannot"
    ):
        data.open_source(rgb)
    (rgb / "indexed.bmp").unlink()
    crop.convert("1").save(rgb / "bilevel.bmp")
    with pytest.raises(DataError, match=r"bilevel.bmp: a 1-bit BMP.*save it as PNG\)$"):
        data.open_source(rgb)

    grey = tmp_path / "grey"
    grey.mkdir()
    for i, crop in enumerate(photo_crops):
        crop.convert("L").save(grey / f"{i}.gif")  # a GIF is a palette image, here of greys only
    crop.convert("L").convert("P").save(grey / "palette.png")
    source = data.open_source(grey)
    assert source.spec.channels == 1
    images, _ = data.load_arrays(grey, "train", test_fraction=0.2)
    expected = {bytes(np.asarray(Image.open(p).convert("L"))) for p in grey.iterdir()}
    assert {bytes(np.round(image[..., 0] * 255).astype(np.uint8)) for image in images} <= expected


def test_hidden_and_empty_folders_are_not_classes_or_splits(tmp_path, photo_crops):
    for split, crops in (("train", photo_crops[:3]), ("test", photo_crops[3:])):
        for i, crop in enumerate(crops):
            (tmp_path / split / "photo").mkdir(parents=True, exist_ok=True)
            crop.save(tmp_path / split / "photo" / f"{i}.png")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "notes").mkdir()
    source = data.open_source(tmp_path)
    assert source.spec.class_names == ("photo",) and source.count("test") == 1
    # A lone test/ is refused whatever hidden folder lies beside it.
    shutil.rmtree(tmp_path / "train")
    with pytest.raises(DataError, match=r"a test/ folder but no train/"):
        data.open_source(tmp_path)
    # A validation split under another name would have been merged into training as a class.
    shutil.move(tmp_path / "test", tmp_path / "train")
    shutil.copytree(tmp_path / "train", tmp_path / "val")
    with pytest.raises(
        DataError, match=r"holds train/ beside val/ \(expected train/ alone, or train/ and test/"
    ):
        data.open_source(tmp_path)


def test_split_folders_in_any_case_and_images_beside_train_refused(tmp_path, photo_crops):
    """`Train/` and `Test/` were two classes (test images trained on); images beside train/ were left out unseen."""
    for split, crops in (("Train", photo_crops[:3]), ("TEST", photo_crops[3:])):
        (tmp_path / split).mkdir()
        for i, crop in enumerate(crops):
            crop.save(tmp_path / split / f"{i}.png")
    source = data.open_source(tmp_path)
    assert source.spec.num_classes is None and (source.count("train"), source.count("test")) == (3, 1)
    photo_crops[0].save(tmp_path / "stray.png")
    with pytest.raises(
        DataError,
        match=r"holds 1 image files, such as stray.png, beside Train/ \(expected every image inside train/ or test/\)$",
    ):
        data.open_source(tmp_path)
    (tmp_path / "stray.png").unlink()
    shutil.copytree(tmp_path / "TEST", tmp_path / "test")
    with pytest.raises(DataError, match=r"holds both TEST/ and test/ \(expected one\)$"):
        data.open_source(tmp_path)


def test_read_options_in_python_as_the_command_line_takes_them(digits_npz):
    assert data.open_source(digits_npz, image_size=16).spec.shape == (16, 16, 1)  # --image-size 16
    assert data.open_source(digits_npz, image_size=np.array([12, 10])).spec.shape == (12, 10, 1)
    with pytest.raises(DataError, match=r"^image_size must be two positive integers, got 1.5$"):
        data.open_source(digits_npz, image_size=1.5)
    with pytest.raises(DataError, match=r"^image_size must be two positive integers, got 'big'$"):
        data.open_source(digits_npz, image_size="big")
    with pytest.raises(
        DataError,
        match=r"^data source must be a name or a path, got an array of shape \(3, 8, 8\) \(for arrays",
    ):
        data.load(np.zeros((3, 8, 8)), "train")


def test_an_npy_file_is_read_whatever_the_case_of_its_suffix(tmp_path, digits_npz):
    images = np.load(digits_npz)["images"]
    np.save(tmp_path / "digits.npy", images)
    (tmp_path / "digits.npy").rename(tmp_path / "DIGITS.NPY")
    train, _ = data.load_arrays(tmp_path / "DIGITS.NPY", "train")
    assert len(train) == 1797 - 180 and train.max() == 1.0


def test_limit_on_train_and_test_class_folders_takes_every_class(tmp_path, fashion_png_folder):
    names = sorted(p.name for p in fashion_png_folder.iterdir())[:3]
    for name in names:
        files = sorted((fashion_png_folder / name).iterdir())
        for split, chosen in (("train", files[:40]), ("test", files[40:50])):
            (tmp_path / split / name).mkdir(parents=True)
            for path in chosen:
                shutil.copy(path, tmp_path / split / name / path.name)
    # The files are listed class by class; the first 40 were all of the first class.
    batches = data.load(tmp_path, "train", batch_size=8, labels=True, limit=40, shuffle=True)
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in batches])
    assert len(labels) == 40 and set(labels) == {0, 1, 2}


def test_a_file_that_fails_while_streamed_is_named(tmp_path, photo_crops):
    from aekeras.training import TrainConfig, train

    for i, crop in enumerate(photo_crops * 4):
        crop.save(tmp_path / f"{i:02d}.jpg", quality=90)
    # Pillow's check reads a JPEG's header only; its data decodes when the pipeline reads it.
    cut = tmp_path / "07.jpg"
    cut.write_bytes(cut.read_bytes()[:-40])
    config = TrainConfig(
        data=str(tmp_path),
        epochs=1,
        batch_size=4,
        out=str(tmp_path / "out"),
        run_dir=str(tmp_path / "runs"),
        verbose=0,
    )
    with pytest.raises(DataError, match=r"07.jpg: cannot be decoded as an image \([^{\[]*\)$"):
        train(config, source=data.open_source(tmp_path, memory_limit=1))  # decoded as read
