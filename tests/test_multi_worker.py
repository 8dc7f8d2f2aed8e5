"""`aekeras train --strategy multi_worker`: two real worker processes on 127.0.0.1."""

import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from aekeras.data.sources import open_source
from aekeras.training.resume import completed_epochs

AEKERAS = [sys.executable, "-m", "aekeras"]


def free_ports(count):
    """`count` ports free now, below the range the system hands out on its own.

    A port found by binding to port 0 comes from the ephemeral range, where
    any outgoing connection (a worker's own gRPC channels included) may take
    it between this check and the worker binding it; ports below that range
    are only ever taken by asking for them. (A host whose ephemeral range
    starts lower gets ports from anywhere above the privileged ones.)
    """
    ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    unassigned = range(10_000, ephemeral_start) if ephemeral_start > 10_200 else range(1024, 65536)
    candidates = random.Random().sample(unassigned, 200)
    ports = [port for port in candidates if _bindable(port)][:count]
    assert len(ports) == count, f"fewer than {count} free ports in {unassigned}"
    return ports


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start(args, cwd, tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [*AEKERAS, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_together(runs, status=0):
    """Starts `(args, cwd, tf_config)` runs at once; returns their `(stdout, stderr)` once all ended with `status`."""
    processes = []
    try:
        processes = [start(args, cwd, tf_config) for args, cwd, tf_config in runs]
        outputs = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            p.kill()
            p.wait()
    for p, (_, stderr) in zip(processes, outputs, strict=True):
        assert p.returncode == status, stderr
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


@pytest.mark.parametrize("count", [2, 3, 7])
def test_worker_shares_split_the_examples_in_order_without_overlap(mnist_dir, fashion_png_folder, count):
    """Each worker's `(index, count)` share: equally many, none shared or skipped but the few left over, every time the same.

    In-process and cheap: the two-worker runs above check the shares only through training.
    """
    mnist = open_source("mnist", data_dir=str(mnist_dir))
    # A folder past its memory limit stays as files, as workers read a large folder.
    folder = open_source(fashion_png_folder, memory_limit=1)
    for source, split, field in (
        (mnist, "test", "images"),
        (mnist, "train", "labels"),
        (folder, "train", "files"),
    ):
        whole = getattr(source.examples(split), field)
        share = len(whole) // count
        shares = [getattr(source.examples(split, shard=(i, count)), field) for i in range(count)]
        assert (
            [len(s) for s in shares]
            == [share] * count
            == [source.count(split, (i, count)) for i in range(count)]
        )
        np.testing.assert_array_equal(np.concatenate(shares), whole[: share * count])
        np.testing.assert_array_equal(
            getattr(source.examples(split, shard=(count - 1, count)), field), shares[-1]
        )
        # `limit` keeps the first examples of the worker's own share.
        limited = getattr(source.examples(split, shard=(1, count), limit=5), field)
        np.testing.assert_array_equal(limited, whole[share : share + 5])


def one_line(stderr):
    assert stderr.count("\n") == 1 and stderr.startswith("aekeras: "), stderr
    return stderr.strip()


def test_a_worker_that_stops_ends_the_others_in_one_line_and_they_resume_or_say_why_not(
    tmp_path, monkeypatch
):
    """The chief printed TensorFlow's UnavailableError traceback (40 lines) when a worker was killed."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # as the command sets it: TensorFlow's C++ log off
    command = ["train", "dense", "--limit", "1024", "--batch-size", "128", "--quiet"]
    runs = worker_runs([*command, "--epochs", "200"], tmp_path)
    processes = [start(args, cwd, tf_config) for args, cwd, tf_config in runs]
    try:
        # Once both workers hold a backup: each resumes from its own.
        backups = [tmp_path / "runs/dense" / f / "backup/training_metadata.json" for f in ("", "worker-1")]
        deadline = time.time() + 240
        while not all(b.exists() for b in backups) and processes[0].poll() is None and time.time() < deadline:
            time.sleep(0.05)
        processes[1].kill()  # the other worker, killed at once
        _, stderr = processes[0].communicate(timeout=180)
    finally:
        for p in processes:
            p.kill()
            p.wait()
    assert processes[0].returncode == 1, stderr
    line = one_line(stderr)
    assert line.startswith("aekeras: error: a worker of the cluster stopped or cannot be reached (")
    kept = re.search(
        r"runs/dense keeps epoch (\d+) of 200: start every worker again with the same command", line
    )
    assert kept and int(kept.group(1)) >= 1, line

    chief_epochs, worker_epochs = (completed_epochs(b.parent) for b in backups)
    epochs = str(chief_epochs + 1)
    runs = worker_runs([*command, "--epochs", epochs], tmp_path)
    if chief_epochs != worker_epochs:
        # Killed between the two workers' backups of an epoch: they cannot resume together, and say so.
        for _, stderr in run_together(runs, status=2):
            assert "resume after other epochs" in one_line(stderr)
        return
    # Started again, each resumes from its own backup.
    outputs = run_together(runs)
    assert f"resuming runs/dense after epoch {chief_epochs} of {epochs}" in outputs[0][0]
    assert f"resuming runs/dense/worker-1 after epoch {chief_epochs} of {epochs}" in outputs[1][0]
    assert (tmp_path / "saved_models/dense/1/saved_model.pb").is_file()


def test_workers_started_with_other_settings_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    """They trained until their collectives no longer matched, then failed with TensorFlow's tracebacks."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # as the command sets it: TensorFlow's C++ log off
    command = ["train", "dense", "--limit", "1024", "--batch-size", "128", "--quiet"]
    runs = worker_runs(command, tmp_path)
    runs[0][0].extend(["--epochs", "3"])
    runs[1][0].extend(["--epochs", "2"])
    for _, stderr in run_together(runs, status=2):
        assert one_line(stderr).startswith(
            "aekeras: error: the workers of this cluster were started with other settings, or resume after "
            "other epochs, than this one's (this one starts afresh); run the same command on every worker"
        )
    # Nothing written (each made and removed its own run folder; the chief's may outlive the other's).
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == []


def test_a_worker_whose_address_is_taken_is_refused_in_one_line(tmp_path, monkeypatch):
    """A second start of the same worker (its port held by the first) ended in a traceback."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # as the command sets it: TensorFlow's C++ log off
    ((args, cwd, tf_config), _) = worker_runs(["train", "dense", "--epochs", "1", "--quiet"], tmp_path)
    host, port = tf_config["cluster"]["worker"][0].split(":")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((host, int(port)))
        holder.listen()
        process = start(args, cwd, tf_config)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert one_line(stderr) == (
        f"aekeras: error: this worker's address in $TF_CONFIG, {host}:{port}, is taken by another process (is "
        "this worker already running?); stop that one, or give this worker a free port"
    )
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_stops_a_worker_waiting_for_its_cluster(tmp_path):
    """Waiting in TensorFlow's C++ code for workers that never came, a worker ignored Ctrl-C: only kill -9 ended it."""
    (_, (args, cwd, tf_config)) = worker_runs(["train", "dense", "--epochs", "1", "--quiet"], tmp_path)
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
    process = subprocess.Popen(
        [*AEKERAS, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 120)
        assert ready and "waiting for every worker" in process.stdout.readline()
        time.sleep(5)  # inside TensorFlow's wait
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGINT  # killed by the signal itself: no handler could run
    assert not (tmp_path / "runs").exists()
