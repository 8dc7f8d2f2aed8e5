"""`aekeras train --strategy multi_worker`: two real worker processes on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

AEKERAS = [sys.executable, "-m", "aekeras"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start(args, cwd, tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [*AEKERAS, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_together(runs):
    """Starts `(args, cwd, tf_config)` runs at once; returns their `(stdout, stderr)` once all succeeded."""
    processes = []
    try:
        processes = [start(args, cwd, tf_config) for args, cwd, tf_config in runs]
        outputs = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            p.kill()
            p.wait()
    for p, (_, stderr) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, stderr
    return outputs


def worker_runs(command, cwd):
    """The runs of a two-worker cluster on 127.0.0.1, one per worker."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    return [
        (
            [*command, "--strategy", "multi_worker"],
            cwd,
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]


def weights(path):
    return keras.models.load_model(path).get_weights()


@pytest.mark.parametrize(
    "args",
    [
        # Both of the VAE's random draws (binarisation and eps) are made per
        # global batch, so each example gets the draw it gets in one process.
        ["vae", "--binarize", "--nll-samples", "0"],
        ["contractive"],
    ],
    ids=["vae", "contractive"],
)
def test_two_workers_train_as_one_process(tmp_path, args):
    model = args[0]
    # Two epochs of two global batches of 128: each worker takes 64 per step.
    command = ["train", *args, "--epochs", "2", "--limit", "256", "--batch-size", "128", "--quiet"]
    (tmp_path / "single").mkdir()
    # The reference: one process, one replica, the same global batches.
    # Under any strategy but the default, Keras peeks at one batch before
    # training, which uses up the first shuffle order; so the reference runs
    # under one too.
    outputs = run_together(
        [*worker_runs(command, tmp_path), ([*command, "--strategy", "mirrored"], tmp_path / "single", None)]
    )

    # Only the chief exports; the other worker keeps its model in its own folder.
    assert "SavedModel" in outputs[0][0] and "SavedModel" not in outputs[1][0]
    assert [p.name for p in (tmp_path / "saved_models" / model).iterdir()] == ["1"]
    record = json.loads((tmp_path / "saved_models" / model / "1" / "run.json").read_text())
    assert record["replicas"] == 2 and record["history"]["epoch"] == [0.0, 1.0]
    single_record = json.loads((tmp_path / "single/saved_models" / model / "1/run.json").read_text())
    assert single_record["replicas"] == 1
    worker = tmp_path / "runs" / model / "worker-1"
    assert sorted(p.name for p in worker.iterdir()) == ["model.keras"]

    chief = weights(tmp_path / "runs" / model / "model.keras")
    for a, b in zip(chief, weights(worker / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    single = weights(tmp_path / "single/runs" / model / "model.keras")
    for a, b in zip(chief, single, strict=True):
        # Measured: at most 4e-7 (the all-reduce sums in another order); a
        # wrong batch split or draw moves weights by about the learning
        # rate, 1e-3, in four Adam steps.
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert record["test_metrics"]["loss"] == pytest.approx(single_record["test_metrics"]["loss"], rel=1e-5)


def test_two_workers_each_decode_their_own_share_of_a_folder(tmp_path, fashion_png_folder):
    command = [
        "train",
        "conv",
        "--data",
        str(fashion_png_folder),
        "--epochs",
        "2",
        "--batch-size",
        "128",
        "--quiet",
    ]
    outputs = run_together(worker_runs(command, tmp_path))
    # 1,350 training images: each worker decodes its 675, by file.
    for index, (stdout, _) in enumerate(outputs):
        assert (
            f"data: this worker read 675 of the 1350 training images (share {index + 1} of 2, by file)"
            in stdout
        )
    chief = weights(tmp_path / "runs/conv/model.keras")
    for a, b in zip(chief, weights(tmp_path / "runs/conv/worker-1/model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    record = json.loads((tmp_path / "saved_models/conv/1/run.json").read_text())
    assert record["replicas"] == 2 and record["image_spec"]["shape"] == [28, 28, 1]
    assert record["history"]["loss"][1] < record["history"]["loss"][0]
