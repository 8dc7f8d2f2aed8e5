"""ONNX exports: every signature of every model, checked in onnxruntime against the SavedModel."""

import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_case import IMAGE_ONLY_NAMES, check_picks_differ_only_at_near_ties

from aekeras import export, onnx, staging
from aekeras.errors import ModelFileError
from aekeras.models import ConvAutoencoder, DenseAutoencoder
from aekeras.serving import LocalServer
from aekeras.signatures import Contract, ServingError


@pytest.fixture(scope="module")
def converted(exported_models):
    """name -> (version folder, {signature: ONNX path}), converted once for the module."""
    _, exported = exported_models
    return {name: (exported[name][1], onnx.convert(exported[name][1])) for name in IMAGE_ONLY_NAMES}


def test_every_signature_of_every_model_matches_the_saved_model(converted, exported_models, digits):
    for name, (path, files) in converted.items():
        saved = Contract.from_saved_model(LocalServer(path).model)
        assert set(files) == set(saved.signatures), name
        assert all(f.parent == path / "onnx" and f.stat().st_size > 0 for f in files.values())
        runner = onnx.Runner(path)
        for signature, expected in saved.signatures.items():
            got = runner.contract.signature(signature)
            # The SavedModel's names, dtypes and input shapes.
            assert got.inputs == expected.inputs, (name, signature)
            assert [o.name for o in got.outputs] == [o.name for o in expected.outputs]
        differences = onnx.max_differences(path, digits[:1000])
        assert set(differences) == set(saved.signatures) - {"sample"}
        assert max(max(outputs.values()) for outputs in differences.values()) <= 1e-4, (name, differences)
        if name == "vqvae":
            _check_flipped_picks_are_ties(differences, path, exported_models[1]["vqvae"][0], digits[:1000])
        else:
            assert differences.images_left_out == 0 and differences.picks_differ == 0


def _check_flipped_picks_are_ties(differences, path, model, images):
    """The images `max_differences` left out are those whose codebook picks differ in ONNX, and those differ at ties.

    A pick may flip where two codebook vectors are tied up to float32
    rounding, which moves a whole vector in `encode` and every
    reconstruction pixel near it.
    """
    picks = onnx.Runner(path)("encode", images=images)["indices"]
    reference = LocalServer(path).model.signatures["encode"](images=tf.constant(images))["indices"].numpy()
    flipped = check_picks_differ_only_at_near_ties(model, images, picks, reference)
    assert differences.picks_differ == pytest.approx(flipped) and flipped <= 1e-3, flipped
    assert differences.images_left_out == np.sum(np.any(picks != reference, axis=(1, 2)))


def test_other_shapes_and_channels(tmp_path, rgb_crops):
    # Real RGB crops, cut to a size the conv model's downsampling does not divide.
    images = rgb_crops[1][:, :30, :26].astype(np.float32) / 255
    for model in (ConvAutoencoder(image_shape=(30, 26, 3)), DenseAutoencoder(image_shape=(30, 26, 3))):
        model(np.zeros((1, 30, 26, 3), np.float32))
        path = export.saved_model(model, tmp_path, type(model).__name__.lower())
        onnx.convert(path)
        differences = onnx.max_differences(path, images)
        assert set(differences) == {"serving_default", "encode", "decode"}
        assert max(max(outputs.values()) for outputs in differences.values()) <= 1e-4
        out = onnx.Runner(path)("serving_default", images=images[:4])
        assert out["reconstruction"].shape == (4, 30, 26, 3) and out["score"].shape == (4,)


def test_vae_sample_draws_fresh_images(converted):
    runner = onnx.Runner(converted["vae"][0])
    first = runner("sample", num_samples=np.array(4, np.int32))["images"]
    second = runner("sample", num_samples=np.array(4, np.int32))["images"]
    assert first.shape == (4, 28, 28, 1) and not np.array_equal(first, second)
    assert 0 <= first.min() and first.max() <= 1
    # Another server process or replica draws afresh too: tf2onnx wrote seed 0 into the random op,
    # and onnxruntime then drew one sequence in every process.
    draw = (
        "import numpy as np; from aekeras import onnx; "
        f"print(onnx.Runner({str(converted['vae'][0])!r})('sample', num_samples=np.array(4, np.int32))['images'].sum())"
    )
    first_draws = {
        subprocess.run([sys.executable, "-c", draw], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(first_draws) == 2


def test_runner_checks_every_call(converted, digits):
    runner = onnx.Runner(converted["dense"][0] / "onnx")
    with pytest.raises(
        ServingError,
        match=r"expects images: float32 \[batch, 28, 28, 1\]; got images: float32 \[2, 56, 28, 1\]",
    ):
        runner("encode", images=np.zeros((2, 56, 28, 1), np.float32))
    broken = digits[:3].copy()
    broken[1, 5, 5, 0] = np.nan
    with pytest.raises(ServingError, match="NaN or infinite values in images"):
        runner("serving_default", images=broken)
    with pytest.raises(ServingError, match="expects images on \\[0, 1\\]"):
        runner("serving_default", images=digits[:3] * 255)
    with pytest.raises(ServingError, match="unknown signature 'sample'"):
        runner("sample", num_samples=np.array(1, np.int32))


def test_a_failed_conversion_keeps_the_previous_files(converted, monkeypatch):
    path, files = converted["dense"]
    before = {name: f.read_bytes() for name, f in files.items()}

    def fail(*args, **kwargs):
        raise RuntimeError("converter failed")

    monkeypatch.setattr(onnx.tf2onnx.convert, "from_function", fail)
    with pytest.raises(RuntimeError, match="converter failed"):
        onnx.convert(path)
    assert {name: f.read_bytes() for name, f in files.items()} == before
    assert sorted(p.name for p in path.iterdir() if p.name.startswith(".")) == []
    assert tf.io.gfile.exists(str(path / "saved_model.pb"))


def test_a_killed_conversions_staging_folder_goes_with_the_next(converted, tmp_path):
    path, files = converted["dense"]
    killed = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    left = path / f"{staging.PREFIX}{socket.gethostname()}-{killed.stdout.strip()}-0123abcd"
    (left / "encode.onnx").parent.mkdir()
    (left / "encode.onnx").write_bytes(files["encode"].read_bytes())
    onnx.convert(path)
    assert not left.exists() and sorted(p.name for p in path.iterdir() if p.name.startswith(".")) == []


def test_runner_refuses_files_of_other_conversions_in_one_line(converted, tmp_path):
    """A file copied in from another export's conversion, or one removed, ran silently beside the others."""
    copy = shutil.copytree(converted["dense"][0], tmp_path / "dense" / "1")
    assert sorted(onnx.Runner(copy).sessions) == ["decode", "encode", "serving_default"]  # whole, it loads
    other_files = converted["contractive"][1]  # the same signatures, another export
    again = f"run `aekeras onnx {copy}` to convert it again"
    shutil.copy(other_files["encode"], copy / "onnx" / "encode.onnx")
    with pytest.raises(ModelFileError) as caught:
        onnx.Runner(copy)
    assert str(caught.value) == (
        f"{copy / 'onnx'}: encode.onnx is of another conversion than decode.onnx, serving_default.onnx "
        f"(another export's, or an earlier one); expected the files of one conversion: {again}"
    )
    (copy / "onnx" / "encode.onnx").unlink()
    with pytest.raises(ModelFileError) as caught:
        onnx.Runner(copy)
    assert str(caught.value) == (
        f"{copy / 'onnx'}: has no encode.onnx of the conversion its other files come from; expected every "
        f"signature's file: {again}"
    )
    shutil.rmtree(copy / "onnx")
    shutil.copytree(other_files["encode"].parent, copy / "onnx")  # a whole conversion, of another export
    with pytest.raises(ModelFileError) as caught:
        onnx.Runner(copy)
    assert str(caught.value) == (
        f"{copy / 'onnx'}: its files are the conversion of another export than {copy} (another version's, or "
        f"the export was replaced since); {again}"
    )


def test_runner_without_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .onnx files"):
        onnx.Runner(tmp_path)


def test_the_opset_asked_for_is_the_files(converted, digits, tmp_path):
    path, files = converted["dense"]
    for f in files.values():
        assert {o.domain: o.version for o in onnx.onnx.load(str(f)).opset_import}[""] == onnx.DEFAULT_OPSET
    copy = tmp_path / "dense" / "1"
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("onnx", "*.tflite"))
    for f in onnx.convert(copy, opset=15).values():
        assert {o.domain: o.version for o in onnx.onnx.load(str(f)).opset_import}[""] == 15, f.name
    assert onnx.max_differences(copy, digits[:64])["encode"]["latent"] <= 1e-4
