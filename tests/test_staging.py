"""Files written whole or not at all, and the leftovers of killed writers."""

import errno
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from aekeras.models import DenseAutoencoder
from aekeras.staging import (
    PARTIAL_PREFIX,
    PREFIX,
    locked,
    made_folder,
    remove_partials,
    staging_path,
    write_atomically,
)


def test_keras_writers_take_the_partial_name_and_their_files_load(tmp_path):
    # Keras refuses a weights file not named `*.weights.h5` and a model not
    # named `*.keras`: the partial name must end as the file does.
    model = DenseAutoencoder(latent_dim=4)
    model(np.zeros((1, 28, 28, 1), np.float32))
    write_atomically(tmp_path / "latest.weights.h5", model.save_weights)
    write_atomically(tmp_path / "epoch-001.keras", model.save)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-001.keras", "latest.weights.h5"]
    loaded = keras.saving.load_model(tmp_path / "epoch-001.keras")
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_partial(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("earlier")

    def torn(partial):
        partial.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, torn)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert path.read_text() == "earlier"


def test_a_full_disk_names_the_file_its_writer_did_not(tmp_path):
    # Writers of files they hold open (a .keras zip, h5py) report ENOSPC with no file name.
    path = tmp_path / "epoch-003.keras"

    def write_to_a_full_device(partial):
        with open(partial, "wb") as file, open("/dev/full", "wb") as device:
            file.write(b"PK")
            device.write(b"\0" * (1 << 16))
            device.flush()  # the kernel answers ENOSPC, as a full disk does

    with pytest.raises(OSError) as raised:
        write_atomically(path, write_to_a_full_device)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    assert list(tmp_path.iterdir()) == []

    def other_failure(partial):
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError) as raised:  # any other error passes as it was
        write_atomically(path, other_failure)
    assert raised.value.filename is None and raised.value.__cause__ is None


def test_remove_partials_removes_a_killed_writers_files_alone(tmp_path):
    # A SIGKILL runs no `finally`: the partial stays until the folder's next writer removes it.
    (tmp_path / f"{PARTIAL_PREFIX}0123-epoch-002.keras").write_bytes(b"PK")
    (tmp_path / "epoch-001.keras").write_bytes(b"whole")
    remove_partials(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-001.keras"]


def test_only_this_machines_stale_staging_folders_go(tmp_path, monkeypatch):
    # A killed process's folder goes; a running process's, another user's and
    # another machine's (a shared file system, where its pids mean nothing) stay.
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    host = socket.gethostname()
    names = [
        f"{PREFIX}{host}-{dead.pid}-0a",
        f"{PREFIX}{host}-{os.getpid()}-0b",
        f"{PREFIX}{host}-1-0c",
        f"{PREFIX}another-host-{dead.pid}-0d",
    ]
    for name in names:
        (tmp_path / name).mkdir()
    real_kill = os.kill

    def kill(pid, signal):
        if pid == 1:
            raise PermissionError(errno.EPERM, "Operation not permitted")  # another user's
        return real_kill(pid, signal)

    monkeypatch.setattr(os, "kill", kill)
    fresh = staging_path(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
    assert fresh.parent == tmp_path and fresh.name.startswith(f"{PREFIX}{host}-{os.getpid()}-")
    assert not fresh.exists()


def test_made_folder_removes_what_it_made_and_the_block_left_empty(tmp_path):
    with made_folder(tmp_path / "a" / "b") as folder:
        assert folder.is_dir()
    assert list(tmp_path.iterdir()) == []
    with made_folder(tmp_path / "a" / "b" / "c") as folder:
        (tmp_path / "a" / "kept").write_text("")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["kept"]


def test_a_locked_folder_refuses_a_second_holder_until_released(tmp_path):
    with locked(tmp_path):
        with pytest.raises(BlockingIOError), locked(tmp_path, wait=False):
            pass
    with locked(tmp_path, wait=False):
        pass
