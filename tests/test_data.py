import gzip
import hashlib

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from aekeras import data
from aekeras.data import DataError, pipeline
from aekeras.data.spec import VALUE_RANGES, to_model_scale, to_unit_scale

# From ../shared/data/mnist/README.md: SHA-256 of the decompressed files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def idx_bytes(array, type_code=0x08):
    """The IDX encoding of a uint8 array."""
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(">u1").tobytes()


def write_split(folder, images, labels, split="train", compress=True):
    """Writes one split's two IDX files into `folder`."""
    prefix = {"train": "train", "test": "t10k"}[split]
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        content = idx_bytes(array)
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / stem).write_bytes(content)


def tiny_split(n=5, size=28):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


# --- the real files ---------------------------------------------------------


@pytest.mark.parametrize("stem", sorted(MNIST_SHA256))
def test_reader_returns_the_exact_bytes_of_the_real_files(mnist_dir, stem):
    content = gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes())
    assert hashlib.sha256(content).hexdigest() == MNIST_SHA256[stem]
    array = data.read_idx(mnist_dir / f"{stem}.gz")
    header = 4 + 4 * array.ndim
    assert array.tobytes() == content[header:]


def test_training_split_sanity_figures(mnist_dir):
    images, labels = data.load_arrays("mnist", "train", data_dir=mnist_dir)
    assert images.shape == (60000, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (60000,) and labels.dtype == np.int64
    # load_arrays gives [0, 1] floats: the 8-bit pixels as TensorFlow's
    # convert_image_dtype (and Keras's Rescaling(1 / 255)) scale them.
    pixels = images
    eight_bit = np.rint(pixels * 255).astype(np.uint8)
    np.testing.assert_array_equal(tf.image.convert_image_dtype(eight_bit, tf.float32).numpy(), pixels)
    assert pixels.mean() == pytest.approx(0.1307, abs=5e-5)
    assert pixels.std() == pytest.approx(0.3081, abs=5e-5)
    assert np.bincount(labels).tolist() == TRAIN_LABEL_COUNTS


def test_test_split_size(mnist_test_arrays):
    images, labels = mnist_test_arrays
    assert images.shape == (10000, 28, 28, 1) and labels.shape == (10000,)


# --- the tf.data pipeline -----------------------------------------------------


@pytest.mark.parametrize("value_range", [(0, 1), (-1, 1)])
def test_load_scales_to_value_range(mnist_dir, mnist_test_arrays, value_range):
    dataset = data.load("mnist", "test", batch_size=1000, value_range=value_range, data_dir=mnist_dir)
    assert dataset.element_spec == tf.TensorSpec((None, 28, 28, 1), tf.float32)
    batches = [b.numpy() for b in dataset]
    assert [len(b) for b in batches] == [1000] * 10
    pixels = np.concatenate(batches)
    low, high = value_range
    assert pixels.min() == low and pixels.max() == high
    # The test split is not shuffled: it is the file's order, rescaled.
    expected = mnist_test_arrays[0] * (high - low) + low
    np.testing.assert_allclose(pixels, expected, atol=1e-6)


def test_the_one_rescale_maps_the_unit_scale_onto_each_value_range_and_back():
    unit = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    spec = data.ImageSpec((4,), value_range=(-1, 1))
    np.testing.assert_array_equal(spec.to_model_scale(unit), [-1.0, -0.5, 0.0, 1.0])
    np.testing.assert_array_equal(spec.to_unit_scale(np.array([-1.0, -0.5, 0.0, 1.0])), unit)
    np.testing.assert_array_equal(to_unit_scale(tf.constant([-1.0, 1.0]), (-1, 1)).numpy(), [0.0, 1.0])
    for same in (spec.replace(value_range=(0, 1)), spec.replace(value_range=None)):
        assert same.to_model_scale(unit) is unit and same.to_unit_scale(unit) is unit


@pytest.mark.parametrize("value_range", VALUE_RANGES)
def test_uint8_pixels_scale_in_one_pass_to_the_bits_of_the_rescale(value_range):
    # Every uint8 value, many times over (the kernel's vectorised loop and its tail).
    pixels = np.tile(np.arange(256, dtype=np.uint8), 1001)
    expected = to_model_scale(pipeline.unit_scale(pixels), value_range)
    one_pass = pipeline.scaled_batch(tf.constant(pixels), value_range).numpy()
    assert one_pass.dtype == np.float32
    np.testing.assert_array_equal(one_pass, expected)
    np.testing.assert_array_equal(
        pipeline.unit_scale(tf.constant(pixels)).numpy(), pipeline.unit_scale(pixels)
    )
    assert (one_pass.min(), one_pass.max()) == value_range


@pytest.mark.parametrize("value_range", VALUE_RANGES)
def test_uint8_and_float_images_give_the_same_batches(mnist_dir, tmp_path, value_range):
    # A uint8 table is gathered and then scaled; a float one is scaled once
    # and gathered. Both give the same bits, in the same order.
    raw = data.open_source("mnist", data_dir=mnist_dir).examples("test").images[:3000]
    assert raw.dtype == np.uint8
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "unit.npy", pipeline.unit_scale(raw))

    def epoch(name):
        dataset = data.load(str(tmp_path / name), "train", value_range=value_range, test_fraction=0.1)
        return np.concatenate([batch.numpy() for batch in dataset])

    batches = epoch("raw.npy")
    assert batches.shape == (2560, 28, 28, 1) and batches.dtype == np.float32
    np.testing.assert_array_equal(batches, epoch("unit.npy"))
    assert pipeline.image_table(raw, value_range).dtype == tf.uint8


@pytest.mark.parametrize("value_range", VALUE_RANGES)
def test_keep_uint8_gives_the_stored_pixels_of_the_float_batches(mnist_dir, tmp_path, value_range):
    options = dict(batch_size=100, shuffle=True, limit=1000, value_range=value_range, data_dir=mnist_dir)
    pixels = data.load("mnist", "test", keep_uint8=True, **options)
    assert pixels.element_spec == tf.TensorSpec((100, 28, 28, 1), tf.uint8)
    batches = list(zip(pixels, data.load("mnist", "test", **options), strict=True))
    assert len(batches) == 10
    for raw, scaled in batches:  # the same order; scaled by the model, the same bits
        np.testing.assert_array_equal(pipeline.scaled_batch(raw, value_range).numpy(), scaled.numpy())
    # Float images come at the value range whatever keep_uint8 says.
    raw = data.open_source("mnist", data_dir=mnist_dir).examples("test").images[:500]
    np.save(tmp_path / "unit.npy", pipeline.unit_scale(raw))
    floats = data.load(str(tmp_path / "unit.npy"), "test", keep_uint8=True, value_range=value_range)
    assert floats.element_spec.dtype == tf.float32
    assert np.concatenate(list(floats)).min() == value_range[0]


@pytest.mark.parametrize("memory_limit", [None, 1], ids=["cached", "decoded-as-read"])
def test_keep_uint8_gives_an_rgb_folders_pixels_of_the_float_batches(rgb_crops_folder, memory_limit):
    options = dict(batch_size=64, shuffle=True, value_range=(-1, 1), memory_limit=memory_limit)
    pixels = data.load(str(rgb_crops_folder), "train", keep_uint8=True, **options)
    assert pixels.element_spec == tf.TensorSpec((64, 32, 32, 3), tf.uint8)
    batches = list(zip(pixels, data.load(str(rgb_crops_folder), "train", **options), strict=True))
    assert len(batches) > 1
    for raw, scaled in batches:
        np.testing.assert_array_equal(pipeline.scaled_batch(raw, (-1, 1)).numpy(), scaled.numpy())


def test_load_flatten_labels_limit_and_remainder(mnist_dir, mnist_test_arrays):
    dataset = data.load(
        "mnist", "test", batch_size=64, flatten=True, labels=True, limit=200, data_dir=mnist_dir
    )
    assert dataset.element_spec == (
        tf.TensorSpec((None, 784), tf.float32),
        tf.TensorSpec((None,), tf.int64),
    )
    batches = list(dataset)
    assert [len(x) for x, _ in batches] == [64, 64, 64, 8]
    labels = np.concatenate([y.numpy() for _, y in batches])
    np.testing.assert_array_equal(labels, mnist_test_arrays[1][:200])
    dropped = data.load("mnist", "test", batch_size=64, limit=200, drop_remainder=True, data_dir=mnist_dir)
    assert [len(x) for x in dropped] == [64, 64, 64]


def test_a_shuffled_pipeline_drops_a_different_short_batch_each_epoch(mnist_dir):
    options = dict(batch_size=64, labels=True, limit=200, shuffle=True, data_dir=mnist_dir)
    dataset = data.load("mnist", "test", **options)
    # One static batch size, which lets TensorFlow fold the training step's shapes.
    assert dataset.element_spec[0].shape == (64, 28, 28, 1)
    epochs = [[y.numpy() for _, y in dataset] for _ in range(3)]
    assert all([len(y) for y in epoch] == [64, 64, 64] for epoch in epochs)
    # The order is redrawn every epoch, so the 8 images left out change.
    kept = [np.sort(np.concatenate(epoch)) for epoch in epochs]
    assert not np.array_equal(kept[0], kept[1]) and not np.array_equal(kept[1], kept[2])
    kept_all = data.load("mnist", "test", drop_remainder=False, **options)
    assert [len(x) for x, _ in kept_all] == [64, 64, 64, 8]
    assert kept_all.element_spec[0].shape == (None, 28, 28, 1)
    # Less than a batch: the one short batch is kept, not dropped.
    small = data.load("mnist", "test", **{**options, "limit": 40})
    assert [len(x) for x, _ in small] == [40]


def test_batches_in_flight_keep_order_within_a_memory_budget(mnist_dir, mnist_test_arrays, monkeypatch):
    monkeypatch.setattr(pipeline, "PARALLEL_BATCHES", 8)  # as on a machine of up to 8 cores
    assert pipeline.batches_in_flight(256, data.ImageSpec((28, 28, 1))) == 8
    assert pipeline.batches_in_flight(256, data.ImageSpec((64, 64, 3))) == 5  # 12 MiB a batch
    assert pipeline.batches_in_flight(256, data.ImageSpec((256, 256, 3))) == 2  # the floor, above budget
    # In memory, gathers of many batches, four at once: 10 MNIST batches (7.7 MiB) each.
    assert pipeline.batches_per_gather(256, data.ImageSpec((28, 28, 1))) == 10
    assert pipeline.batches_in_flight(256, data.ImageSpec((28, 28, 1)), 10) == 4
    assert pipeline.batches_per_gather(256, data.ImageSpec((8, 8, 1))) == 32  # the cap, within 8 MiB
    assert pipeline.batches_per_gather(256, data.ImageSpec((64, 64, 3))) == 1
    # Many more batches than are in flight arrive in order.
    dataset = data.load("mnist", "test", batch_size=50, labels=True, limit=5000, data_dir=mnist_dir)
    labels = np.concatenate([y.numpy() for _, y in dataset])
    np.testing.assert_array_equal(labels, mnist_test_arrays[1][:5000])


def first_labels(mnist_dir, seed):
    dataset = data.load(
        "mnist", "train", batch_size=32, labels=True, limit=2000, seed=seed, data_dir=mnist_dir
    )
    return [y.numpy() for _, y in dataset.take(2)]


def test_training_order_is_shuffled_deterministically_by_seed(mnist_dir):
    first = first_labels(mnist_dir, seed=1)
    again = first_labels(mnist_dir, seed=1)
    other = first_labels(mnist_dir, seed=2)
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert not np.array_equal(np.concatenate(first), np.concatenate(other))
    _, labels = data.load_arrays("mnist", "train", data_dir=mnist_dir)
    assert not np.array_equal(first[0], labels[:32])


def test_training_order_changes_between_epochs(mnist_dir):
    dataset = data.load("mnist", "train", batch_size=100, labels=True, limit=500, data_dir=mnist_dir)
    epoch1 = np.concatenate([y.numpy() for _, y in dataset])
    epoch2 = np.concatenate([y.numpy() for _, y in dataset])
    assert not np.array_equal(epoch1, epoch2)
    assert sorted(epoch1) == sorted(epoch2)


def test_fashion_mnist_from_debian_files(fashion_dir, monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV)
    images, labels = data.load_arrays("fashion_mnist", "test")
    assert images.shape == (10000, 28, 28, 1)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_auto_source_prefers_the_tfds_manual_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    images, labels = tiny_split(3)
    write_split(
        tmp_path / "tensorflow_datasets/downloads/manual/mnist", images, labels, "test", compress=False
    )
    got_images, got_labels = data.load_arrays("mnist", "test")
    np.testing.assert_array_equal(got_images[..., 0], pipeline.unit_scale(images))
    np.testing.assert_array_equal(got_labels, labels)


# --- bad input ------------------------------------------------------------------


def test_bad_arguments(mnist_dir):
    with pytest.raises(DataError, match="cifar10: no such file or folder"):
        data.load("cifar10", "train", data_dir=mnist_dir)
    with pytest.raises(DataError, match="unknown split 'validation'"):
        data.load("mnist", "validation", data_dir=mnist_dir)
    with pytest.raises(DataError, match=r"value_range \(0.0, 255.0\)"):
        data.load("mnist", "test", value_range=(0, 255), data_dir=mnist_dir)
    with pytest.raises(DataError, match="batch_size must be a positive integer"):
        data.load("mnist", "test", batch_size=0, data_dir=mnist_dir)


def test_missing_folder_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="data folder does not exist"):
        data.load_arrays("mnist", "train", data_dir=tmp_path / "nope")
    images, labels = tiny_split()
    write_split(tmp_path, images, labels, "train")
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no train-labels-idx1-ubyte or train-labels-idx1-ubyte.gz"):
        data.load_arrays("mnist", "train", data_dir=tmp_path)


def test_no_source_lists_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataError) as error:
        data.load_arrays("mnist", "train")
    message = str(error.value)
    assert "no source could serve mnist train" in message
    assert "TFDS manual folder" in message and "AEKERAS_DATA_DIR" in message
    # TFDS was asked without a download (there is no network here), and
    # left nothing behind.
    assert "tfds:mnist: not prepared" in message
    assert not (tmp_path / "tensorflow_datasets").exists()


def corrupt(tmp_path, transform, which="images"):
    """Writes a valid split, then rewrites one file's bytes with `transform`."""
    images, labels = tiny_split()
    write_split(tmp_path, images, labels, compress=False)
    path = tmp_path / f"train-{which}-idx{3 if which == 'images' else 1}-ubyte"
    path.write_bytes(transform(path.read_bytes()))
    return path


@pytest.mark.parametrize(
    "transform, message",
    [
        (lambda b: b[:-1], r"promises shape \(5, 28, 28\) \(3936 bytes in all\) but the file holds 3935"),
        (lambda b: b + b"\0", "but the file holds 3937 bytes"),
        (lambda b: b"\x00\x01" + b[2:], "bad IDX magic number 0x00010803"),
        (lambda b: b[:2] + b"\x07" + b[3:], "bad IDX magic number 0x00000703"),
        (lambda b: b[:6], "header promises 3 dimensions but the file ends after 6 bytes"),
        (lambda b: b"", "0 bytes is too short"),
    ],
)
def test_malformed_image_file(tmp_path, transform, message):
    path = corrupt(tmp_path, transform)
    with pytest.raises(DataError, match=message) as error:
        data.load_arrays("mnist", "train", data_dir=tmp_path)
    assert str(path) in str(error.value)


def test_mismatched_counts_and_wrong_image_size(tmp_path):
    images, labels = tiny_split(5)
    write_split(tmp_path, images, labels[:4])
    with pytest.raises(DataError, match="holds 5 images but .* holds 4 labels"):
        data.load_arrays("mnist", "train", data_dir=tmp_path)
    images, labels = tiny_split(5, size=27)
    write_split(tmp_path, images, labels)
    with pytest.raises(DataError, match=r"images of shape \(27, 27\).*expected 28x28 uint8"):
        data.load_arrays("mnist", "train", data_dir=tmp_path)
    images, _ = tiny_split(5)
    write_split(tmp_path, images, np.full(5, 11, np.uint8))
    with pytest.raises(DataError, match="label 11 found"):
        data.load_arrays("mnist", "train", data_dir=tmp_path)


def test_images_and_labels_swapped(tmp_path):
    images, labels = tiny_split(5)
    write_split(tmp_path, images, labels)
    a, b = tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz"
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    with pytest.raises(DataError, match=r"images of shape \(\).*expected 28x28"):
        data.load_arrays("mnist", "train", data_dir=tmp_path)


def test_gzip_problems(tmp_path, mnist_dir):
    images, labels = tiny_split()
    write_split(tmp_path, images, labels)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(idx_bytes(images))  # raw bytes named .gz
    with pytest.raises(DataError, match="not a valid gzip file"):
        data.load_arrays("mnist", "train", data_dir=tmp_path)
    real = (mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
    path.write_bytes(real[: len(real) // 2])  # truncated download
    with pytest.raises(DataError, match=f"{path}: not a valid gzip file"):
        data.read_idx(path)
    path.write_bytes(real[:10] + bytes(len(real) - 10))  # corrupt body
    with pytest.raises(DataError, match="not a valid gzip file"):
        data.read_idx(path)


def test_env_folder_serves_other_data_sets_only_from_their_subfolder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "data"))
    mnist_images, mnist_labels = tiny_split(4)
    write_split(tmp_path / "data", mnist_images, mnist_labels, "test")
    fashion_images, fashion_labels = tiny_split(6)
    write_split(tmp_path / "data" / "fashion_mnist", fashion_images, fashion_labels, "test")
    got, _ = data.load_arrays("mnist", "test")
    np.testing.assert_array_equal(got[..., 0], pipeline.unit_scale(mnist_images))
    got, _ = data.load_arrays("fashion_mnist", "test")
    np.testing.assert_array_equal(got[..., 0], pipeline.unit_scale(fashion_images))
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(DataError, match="AEKERAS_DATA_DIR=.*missing: data folder does not exist"):
        data.load_arrays("mnist", "test")


# --- fuzzing the IDX reader -----------------------------------------------------

IDX_ITEMSIZES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}
# Derandomized, so every run checks the same inputs; no example database.
FUZZ = settings(deadline=None, derandomize=True, database=None)


@st.composite
def idx_files(draw):
    """Mostly well-formed IDX files: some exact, some cut short or one byte long.

    Small dimensions keep bodies of the promised size common; huge ones,
    unknown type codes and absurd ranks reach the header checks.
    """
    type_code = draw(st.sampled_from([*IDX_ITEMSIZES] * 3 + [0x00, 0x0A, 0xFF]))
    ndim = draw(st.sampled_from([1, 2, 3, 4] * 3 + [0, 33, 65, 255]))
    if ndim <= 4:
        dims = draw(
            st.lists(st.sampled_from([*range(7)] * 3 + [2**31, 2**32 - 1]), min_size=ndim, max_size=ndim)
        )
        dim_bytes = b"".join(d.to_bytes(4, "big") for d in dims)
    else:
        dim_bytes = draw(st.binary(min_size=4 * ndim, max_size=4 * ndim))
    size = IDX_ITEMSIZES.get(type_code, 1)
    for i in range(ndim):
        size *= int.from_bytes(dim_bytes[4 * i : 4 * i + 4], "big")
    body = draw(st.binary(min_size=size, max_size=size) if size <= 256 else st.binary(max_size=16))
    content = bytes([0, 0, type_code, ndim]) + dim_bytes + body
    if draw(st.integers(0, 3)) == 0:
        cut = draw(st.integers(0, len(content)))
        content = content[:cut] if draw(st.booleans()) else content + b"\0"
    return content


def corrupted(compressed, position, value):
    """`compressed` with the byte at `position` (modulo its length) replaced."""
    i = position % len(compressed)
    return compressed[:i] + bytes([value]) + compressed[i + 1 :]


@settings(FUZZ, max_examples=3000)
@given(st.binary(max_size=64) | idx_files())
def test_fuzzed_idx_bytes_give_an_array_or_a_data_error(content):
    try:
        array = data.parse_idx(content)
    except DataError:
        return
    assert isinstance(array, np.ndarray) and array.dtype.isnative
    assert 4 + 4 * array.ndim + array.nbytes == len(content)


@settings(FUZZ, max_examples=1000)
@given(
    st.binary(max_size=64)
    | idx_files().map(gzip.compress)
    | st.builds(corrupted, idx_files().map(gzip.compress), st.integers(0, 1000), st.integers(0, 255))
)
def test_fuzzed_gz_files_give_an_array_or_a_data_error(tmp_path_factory, content):
    path = tmp_path_factory.getbasetemp() / "fuzzed-idx3-ubyte.gz"
    path.write_bytes(content)
    try:
        array = data.read_idx(path)
    except DataError as e:
        assert str(path) in str(e)
        return
    np.testing.assert_array_equal(array, data.parse_idx(gzip.decompress(content)))
