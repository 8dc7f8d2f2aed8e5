"""Staging folders: work built beside where it goes and moved into place when whole.

A staging folder is named `.staging-<host>-<pid>-<random>` inside the folder
it publishes into, so that the leftovers of a killed process can be told
from those of a running one, and the next run removes them.
"""

import contextlib
import fcntl
import os
import shutil
import socket
import uuid
from pathlib import Path

from aekeras.errors import DISK_FULL, system_errno

PREFIX = ".staging-"
# A file written by `write_atomically` is `.partial-<random>-<its name>`
# until it is whole: it ends as the file does, as some writers require
# (Keras's `.keras` and `.weights.h5`), and no glob for the file matches it.
PARTIAL_PREFIX = ".partial-"


def staging_path(parent):
    """A fresh staging path in `parent` (not made), once the stale ones there are removed."""
    remove_stale(parent)
    return Path(parent) / f"{PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"


def remove_stale(parent):
    """Removes the staging folders in `parent` of killed processes on this machine.

    Folders of other machines (on a shared file system) and of running
    processes are left alone.
    """
    host = socket.gethostname()
    for path in Path(parent).glob(f"{PREFIX}*"):
        owner, _, pid = path.name[len(PREFIX) :].rpartition("-")[0].rpartition("-")
        if owner == host and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def write_atomically(path, write):
    """Calls `write(partial path)` beside `path`, then renames the file into place.

    An interrupted or failed write leaves nothing at `path` (an earlier file
    there stays whole) and removes the partial file; a killed process's
    partial files are removed by `remove_partials`.
    """
    path = Path(path)
    partial = path.with_name(f"{PARTIAL_PREFIX}{uuid.uuid4().hex}-{path.name}")
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as error:
        named = _naming(error, path)
        if named is error:
            raise
        raise named from error
    finally:
        partial.unlink(missing_ok=True)


def _naming(error, path):
    """`error`, or for a full disk that did not say where, the same error naming `path`.

    Writers of files they hold open (Keras's `.keras` zip, h5py) report a
    full disk without the file's name, or in their own words only.
    """
    code = disk_full_errno(error)
    if error.filename is not None or code is None:
        return error
    return OSError(code, os.strerror(code), str(path))


def disk_full_errno(error):
    """ENOSPC, EDQUOT or EFBIG where `error` says a write found no room (as an OSError or in TensorFlow's words), else None."""
    return system_errno(error, DISK_FULL)


def remove_partials(folder):
    """Removes the partial files `write_atomically` left in `folder` when its process was killed.

    For a folder only one process writes into at a time.
    """
    for leftover in Path(folder).glob(f"{PARTIAL_PREFIX}*"):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(folder, wait=True):
    """Holds an exclusive lock on `folder` (`flock` on the folder itself, leaving no lock file).

    The lock goes with the process, however it ends. Without `wait`,
    raises BlockingIOError at once where another process holds it.
    """
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextlib.contextmanager
def made_folder(folder):
    """Makes `folder` (and its missing parents) for the block; those it made and the block left empty go again.

    So work that stops before writing anything (a failed check, an
    unfinished export) leaves no empty folders behind.
    """
    folder = Path(folder)
    made = [f for f in (folder, *folder.parents) if not f.exists()]
    try:
        # Made within the `try`: a Ctrl-C as it returns still removes it.
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    finally:
        for path in made:  # innermost first
            try:
                path.rmdir()
            except OSError:
                break  # not empty: the block's work, or another writer's
