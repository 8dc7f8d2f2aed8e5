"""Users' own images, end to end through the command line, on real data no one here made.

Each source is trained on by `aekeras train`, served from its SavedModel by
REST and gRPC as TF Serving would, converted by `aekeras tflite --quantize
int8` (calibrated and measured on the run's own data) and run in LiteRT.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images
from tensorflow_serving.apis import predict_pb2

from aekeras import data, export, onnx, quantization, serving, tflite
from aekeras.models import load_model

AEKERAS = [sys.executable, "-m", "aekeras"]


def run(args, cwd, timeout=600, env=None):
    return subprocess.run(
        [*AEKERAS, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def train_serve_convert(tmp_path, source, model_args, image_shape):
    """Runs the whole path; returns the export's folder, its run.json and the LiteRT runner."""
    trained = run(["train", *model_args, "--data", str(source), "--epochs", "2", "--quiet"], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert trained.stderr == ""  # TensorFlow's own log lines stay quiet
    version = tmp_path / "saved_models" / model_args[0] / "1"
    record = json.loads((version / "run.json").read_text())
    assert record["data"]["source"] == str(source.absolute())
    assert record["image_spec"]["shape"] == list(image_shape)
    # Validated on the data's own test split every epoch.
    assert len(record["history"]["val_loss"]) == 2 and None not in record["history"]["val_loss"]

    images, _ = data.load_arrays(source, "test")
    server = serving.LocalServer(version)
    contract = serving.load_contract(tmp_path / "saved_models" / model_args[0])
    assert contract.signature("serving_default").inputs[0].shape == (None, *image_shape)
    body = json.dumps(serving.rest_request(contract=contract, images=images[:3]))
    rest = serving.parse_rest_response(json.dumps(server.rest_predict(body)), contract=contract)
    assert set(rest) == {"reconstruction", "score"} and rest["score"].dtype == np.float32
    request = serving.grpc_request(model_args[0], contract=contract, images=images[:3])
    response = server.grpc_predict(predict_pb2.PredictRequest.FromString(request.SerializeToString()))
    grpc = serving.parse_grpc_response(response)
    assert rest["reconstruction"].shape == grpc["reconstruction"].shape == (3, *image_shape)
    np.testing.assert_allclose(rest["reconstruction"], grpc["reconstruction"], atol=1e-6)
    assert record["test_metrics"]["mse_01"] == pytest.approx(
        serving.reconstruction_mse(server, images), rel=1e-4
    )

    converted = run(
        ["tflite", str(version), "--quantize", "int8", "--calibration-images", "300"], cwd=tmp_path
    )
    assert converted.returncode == 0, converted.stderr
    assert converted.stderr == ""  # the converter's and LiteRT's C++ log lines stay quiet
    calibrated = min(300, len(data.load_arrays(source, "train")[0]))
    assert f"calibrating on {calibrated} training images of {record['data']['source']}" in converted.stdout
    assert f"test reconstruction MSE on {len(images)} images" in converted.stdout
    batches = -(-len(images) // 500)  # progress, as plain lines off a terminal
    assert (
        f"LiteRT serving_default against the SavedModel (batches): {batches}/{batches} (" in converted.stdout
    )
    assert "on the test images (batches)" not in converted.stdout  # the MSEs come of the same calls
    litert_mse, saved_mse = map(
        float, re.search(r"LiteRT ([\d.]+), SavedModel ([\d.]+)", converted.stdout).groups()
    )
    assert saved_mse == pytest.approx(record["test_metrics"]["mse_01"], rel=1e-4)
    runner = tflite.Runner(version / f"{model_args[0]}-int8.tflite")
    litert = runner("serving_default", images=images[:3])["reconstruction"]
    assert np.mean(np.abs(litert - grpc["reconstruction"])) < 0.05
    assert litert_mse == pytest.approx(runner.reconstruction_mse(images), abs=1e-6)  # printed to 6 places
    assert litert_mse <= 1.2 * record["test_metrics"]["mse_01"]
    # int16x8 (LiteRT's quantizer) at this shape: the same float32 contract,
    # dynamic batch included, and reconstructions as close as int8's.
    sixteen = tflite.Runner(tflite.convert(version, "int16x8", images=tflite.calibration_images(source, 100)))
    assert sixteen.contract == runner.contract
    reconstruction = sixteen("serving_default", images=images[:3])["reconstruction"]
    assert reconstruction.shape == (3, *image_shape)
    assert np.mean(np.abs(reconstruction - grpc["reconstruction"])) < 0.05
    # With its kernels on the int8 grid, the export converts to int16x8 within a hundredth, at this
    # shape, also with the inner tensors' names stripped (the smallest file).
    model = load_model(tmp_path / "runs" / model_args[0] / "model.keras")
    snapped = export.saved_model(model, tmp_path / "int8_weights", model_args[0], int8_weights=True)
    assert quantization.on_int8_grid(serving.LocalServer(snapped).model)
    calibration = tflite.calibration_images(source, 100)
    stripped = tflite.convert(snapped, "int16x8", images=calibration, strip_names=True)
    assert tflite.Runner(stripped).contract == sixteen.contract
    differences = tflite.max_differences(stripped, images)
    assert max(d for outputs in differences.values() for d in outputs.values()) < 1e-2, differences
    check_onnx(tmp_path, version, contract, len(images))
    return version, record, runner


def check_onnx(tmp_path, version, contract, num_test_images):
    """`aekeras onnx` converts every signature and reports each within 1e-4 of the SavedModel."""
    converted = run(["onnx", str(version)], cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert converted.stderr == ""
    differences = re.findall(
        r"ONNX (\w+): .*max \|ONNX - SavedModel\| (\S+) on (\d+) test images", converted.stdout
    )
    random = set(re.findall(r"ONNX (\w+): .*draws random numbers", converted.stdout))
    assert random <= {"sample"}
    assert {name for name, _, _ in differences} | random == set(contract.signatures)
    for _, difference, count in differences:
        assert float(difference) <= 1e-4 and int(count) == num_test_images
    onnx_mse, saved_mse = map(
        float, re.search(r"ONNX ([\d.]+), SavedModel ([\d.]+)", converted.stdout).groups()
    )
    assert f"test reconstruction MSE on {num_test_images} images of " in converted.stdout
    assert onnx_mse == pytest.approx(saved_mse, rel=1e-4, abs=1e-6)
    assert onnx.Runner(version).contract.signatures.keys() == contract.signatures.keys()


def test_scikit_learn_digits_npz_with_a_dense_model(tmp_path, digits_npz):
    version, record, _ = train_serve_convert(tmp_path, digits_npz, ["dense", "--latent-dim", "8"], (8, 8, 1))
    assert record["image_spec"]["num_classes"] == 10 and record["image_spec"]["value_range"] == [-1.0, 1.0]
    assert record["data"]["options"]["test_fraction"] == 0.1


def test_rgb_crops_png_folder_with_a_conv_model(tmp_path, rgb_crops_folder):
    folder = tmp_path / "crops"
    shutil.copytree(rgb_crops_folder, folder)
    version, record, runner = train_serve_convert(tmp_path, folder, ["conv"], (32, 32, 3))
    assert record["image_spec"]["num_classes"] is None
    assert runner.contract.signature("decode").inputs[0].shape == (None, 4, 4, 8)

    # A larger photograph joins the run's folder: the conversions test on it at the export's size when told.
    crop = load_sample_images().images[1][:48, :48]
    Image.fromarray(crop).save(folder / "test" / "larger.png")
    refused = run(["onnx", str(version)], cwd=tmp_path)
    assert refused.returncode == 2 and "pass --image-size HxW to resize them" in refused.stderr
    converted = run(["onnx", str(version), "--image-size", "32x32"], cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert (
        f"on {len(data.load_arrays(folder, 'test', image_size=(32, 32))[0])} test images" in converted.stdout
    )


def test_fashion_mnist_png_class_folders_with_a_conv_vae(tmp_path, fashion_png_folder):
    version, record, _ = train_serve_convert(
        tmp_path,
        fashion_png_folder,
        ["vae", "--architecture", "conv", "--latent-dim", "4", "--nll-samples", "5"],
        (28, 28, 1),
    )
    assert record["model_config"]["likelihood"] == "bernoulli"
    assert len(record["image_spec"]["class_names"]) == 10 and "nll" in record["test_metrics"]
    samples = serving.LocalServer(version).predict("sample", num_samples=np.int32(3))["images"]
    assert samples.shape == (3, 28, 28, 1)


def test_a_prepared_tfds_data_set_trains_offline(tmp_path, tfds_digits_dir):
    data_dir, name = tfds_digits_dir
    trained = run(
        ["train", "conv", "--data", f"tfds:{name}", "--data-dir", str(data_dir), "--epochs", "1", "--quiet"],
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    record = json.loads((tmp_path / "saved_models/conv/1/run.json").read_text())
    assert record["image_spec"]["shape"] == [8, 8, 1] and record["data"]["source"] == f"tfds:{name}"


def test_tfds_without_data_or_network_fails_in_seconds_leaving_nothing(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    started = time.monotonic()
    result = run(["train", "conv", "--data", "tfds:cifar10", "--epochs", "1"], cwd=tmp_path / "work", env=env)
    # Offline, tfds.load would retry the download for about 3.5 minutes.
    assert time.monotonic() - started < 60
    assert result.returncode == 2
    assert result.stderr.startswith("aekeras: error: tfds:cifar10: not prepared in")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "home" / "tensorflow_datasets").exists()
    assert list((tmp_path / "work").iterdir()) == []


def _bad_sources(folder):
    """name -> (path, expected message) for every kind of bad input."""
    from PIL import Image

    (folder / "empty").mkdir()
    (folder / "notes.txt").write_text("not images")
    (folder / "corrupt").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / "corrupt" / f"{i}.png")
    (folder / "corrupt" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "sizes").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "sizes" / "a.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(folder / "sizes" / "b.png")
    np.savez(folder / "rank.npz", images=np.zeros((5, 8), np.uint8))
    np.savez(folder / "channels_first.npz", images=np.zeros((5, 3, 8, 8), np.uint8))
    np.savez(folder / "dtype.npz", images=np.zeros((5, 8, 8), np.int32))
    np.savez(folder / "nan.npz", images=np.full((5, 8, 8), np.nan, np.float32))
    np.savez(folder / "labels.npz", images=np.zeros((5, 8, 8), np.uint8), labels=np.zeros(4, np.int64))
    return {
        "missing": ("missing", "missing: no such file or folder"),
        "empty": ("empty", "empty: no images (expected PNG, JPEG, BMP, GIF or WebP files"),
        "not data": ("notes.txt", "notes.txt: neither a folder of images nor an .npz/.npy array file"),
        "corrupt": ("corrupt", "corrupt/2.png: not a readable image"),
        "sizes": ("sizes", "images differ in size (8x8 in"),
        "rank": ("rank.npz", "images of shape (5, 8) (expected [n, height, width]"),
        "channels first": (
            "channels_first.npz",
            "channels first? np.moveaxis(images, 1, -1) puts them last)",
        ),
        "dtype": ("dtype.npz", "images of dtype int32 (expected uint8 0-255 or float in [0, 1])"),
        "nan": ("nan.npz", "images hold NaN or infinite values"),
        "labels": ("labels.npz", "4 labels for 5 images (expected one label per image)"),
    }


def test_bad_data_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import contextlib
    import io

    from aekeras import cli

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cases = _bad_sources(inputs)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for name, (path, message) in cases.items():
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            status = cli.main(["train", "conv", "--data", str(inputs / path), "--epochs", "1"])
        assert status == 2, name
        assert stderr.getvalue().count("\n") == 1 and stderr.getvalue().startswith("aekeras: error: "), name
        assert message in stderr.getvalue(), (name, stderr.getvalue())
    assert list((tmp_path / "work").iterdir()) == []
    result = run(["train", "conv", "--data", str(inputs / "sizes"), "--channels", "2"], cwd=tmp_path / "work")
    assert (
        result.returncode == 2
        and "argument --channels: invalid choice: 2 (choose from 1, 3)" in result.stderr
    )
    assert list((tmp_path / "work").iterdir()) == []
