"""Users' folders of many images: what `--limit` decodes, the scan's progress, and a resume after a rename.

Small real folders (MNIST digits as PNGs) stand in for large ones: the
tests count the files decoded and the lines shown, not seconds.
"""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from aekeras import data
from aekeras.data import folder, sources
from aekeras.errors import SettingsChangedError
from aekeras.training import TrainConfig, train


@pytest.fixture(scope="module")
def digit_classes(tmp_path_factory, mnist_test_arrays):
    """300 MNIST test digits as PNGs, one subfolder per class."""
    root = tmp_path_factory.mktemp("digits")
    images, labels = mnist_test_arrays
    for i in range(300):
        (root / str(labels[i])).mkdir(exist_ok=True)
        Image.fromarray(np.round(images[i] * 255).astype(np.uint8).squeeze()).save(
            root / str(labels[i]) / f"{i:03d}.png"
        )
    return root


@pytest.fixture
def decoded(monkeypatch):
    """The counts of files each call of `decode_files` decoded into memory."""
    counts = []
    decode_files = sources.decode_files

    def counting(files, *args, **kwargs):
        counts.append(len(files))
        return decode_files(files, *args, **kwargs)

    monkeypatch.setattr(sources, "decode_files", counting)
    return counts


def test_a_limit_decodes_only_the_examples_it_keeps(digit_classes, decoded):
    """`--limit 100` of 63,000 files decoded every one of them into memory, to train on 100."""
    source = data.open_source(digit_classes)
    first = source.examples("train", limit=20)
    assert decoded == [20] and len(first) == 20
    everything = source.examples("train")
    assert decoded == [20, 270]
    np.testing.assert_array_equal(first.images, everything.images[:20])
    np.testing.assert_array_equal(first.labels, everything.labels[:20])
    batches = data.load(digit_classes, "train", limit=7, batch_size=4, shuffle=False)
    assert decoded[-1] == 7 and sum(len(b) for b in batches) == 7
    with pytest.raises(data.DataError, match="limit must be a positive integer or None, got 0"):
        source.examples("train", limit=0)


def test_training_with_a_limit_decodes_only_its_examples_and_the_test_split(tmp_path, digit_classes, decoded):
    """The run decoded the whole training split for `limit` of it, and the test split a second time for its pictures."""
    config = TrainConfig(
        data=str(digit_classes), epochs=1, limit=40, batch_size=20, out=str(tmp_path / "out"),
        run_dir=str(tmp_path / "runs"), verbose=0,
    )  # fmt: skip
    train(config)
    # 40 training images, the 30 held out, then the same 30 for TensorBoard's pictures (at most 1,000).
    assert sorted(decoded) == [30, 30, 40]


def test_the_scan_and_the_decoding_of_many_files_show_their_progress(digit_classes, monkeypatch, capsys):
    """70,000 files were scanned and decoded in silence, however long that took; few files stay silent."""
    data.open_source(digit_classes, verbose=True).examples("train")
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(folder, "PROGRESS_FILES", 100)
    data.open_source(digit_classes, verbose=True).examples("train")
    lines = capsys.readouterr().out.splitlines()  # not a terminal: plain lines, one a tenth
    scanned = [line for line in lines if line.startswith("scanning images (files): ")]
    assert len(scanned) == 10 and scanned[-1].startswith("scanning images (files): 300/300 (")
    assert lines[-1].startswith("decoding images into memory (batches): 2/2 (")
    data.open_source(digit_classes).examples("train")  # a library call is silent unless asked
    assert capsys.readouterr().out == ""


def test_a_folder_whose_file_was_renamed_is_not_resumed(
    tmp_path, digit_classes, interrupt_after_the_first_epoch
):
    """Same counts, other names: the held-out split, drawn by position, moved over images trained on."""
    images = tmp_path / "digits"
    shutil.copytree(digit_classes, images)

    config = TrainConfig(
        data=str(images), epochs=2, batch_size=30, out=str(tmp_path / "out"), run_dir=str(tmp_path / "runs"),
        verbose=0,
    )  # fmt: skip
    interrupt_after_the_first_epoch(config)
    first = sorted((images / "3").iterdir())[0]
    os.replace(first, images / "3" / "zzz.png")
    with pytest.raises(
        SettingsChangedError, match=r"whose data folder had other files: some were renamed, or some removed"
    ):
        train(config)
    # Renamed back, and the folder moved: the same files, so the run resumes.
    os.replace(images / "3" / "zzz.png", first)
    moved = tmp_path / "moved"
    images.rename(moved)
    assert data.open_source(moved).file_names_digest() == data.open_source(digit_classes).file_names_digest()
    images.symlink_to(moved)  # the run's data is where it was
    assert train(config)["resumes"] == 1


@pytest.mark.parametrize("quiet", [False, True])
def test_aekeras_train_shows_the_scan_unless_quiet(tmp_path, digit_classes, monkeypatch, capsys, quiet):
    from aekeras import cli

    monkeypatch.setattr(folder, "PROGRESS_FILES", 100)
    argv = [
        "train",
        "dense",
        "--data",
        str(digit_classes),
        "--epochs",
        "1",
        "--limit",
        "40",
        "--latent-dim",
        "4",
    ]
    argv += ["--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")] + ["--quiet"] * quiet
    assert cli.main(argv) == 0
    shown = "scanning images (files): 300/300 (" in capsys.readouterr().out
    assert shown == (not quiet)


@pytest.mark.parametrize("image_size", [None, (28, 28)], ids=["own size", "--image-size"])
def test_a_file_replaced_by_one_of_another_size_while_streamed_is_named(tmp_path, digit_classes, image_size):
    """Read as it goes, a file replaced mid-training by a 32x32 image was resized into the batch, where the
    scan of such a folder asks for --image-size."""
    images = shutil.copytree(digit_classes, tmp_path / "digits")
    source = data.open_source(images, memory_limit=1, image_size=image_size)  # decoded as read
    training = source.examples("train")
    batches = data.make_dataset(training, source.spec, batch_size=64)
    # A training file, which the batches read (a held-out one they never would).
    replaced, other = training.files[:2]
    with Image.open(other) as digit:  # another real digit, at another size
        digit.resize((32, 32)).save(replaced)
    if image_size is None:
        with pytest.raises(data.DataError) as caught, data.naming_undecodable_files(source):
            list(batches)
        assert str(caught.value) == (
            f"{replaced}: 32x32 pixels, not the 28x28 of every image when the folder was scanned (expected the "
            "folder to stay as it was while it is read, or --image-size to resize every image)"
        )
    else:  # asked to resize every image, it is resized as the others would be
        shapes = [batch.shape for batch in batches]
        assert sum(shape[0] for shape in shapes) == 270 and {shape[1:] for shape in shapes} == {(28, 28, 1)}
