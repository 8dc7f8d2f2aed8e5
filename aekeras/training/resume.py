"""What a run's backup records, so that only the same run resumes from it.

Keras's `BackupAndRestore` restores weights by position: a backup made with
other settings fails deep in Keras, or worse, loads. The backup here also
records the settings that shape the model and the data, the training time
so far and how often the run resumed.
"""

import json
import os
import shutil
import time
from pathlib import Path

from aekeras.errors import SettingsChangedError, system_errno
from aekeras.staging import write_atomically

STATE_FILE = "run_state.json"
_METADATA_FILE = "training_metadata.json"  # Keras's: {"epoch": completed epochs, ...}
_WEIGHTS_FILE = "latest.weights.h5"  # Keras's
SEED_STATES_FILE = "seed_states.npy"  # the model's random state (`callbacks.AtomicBackupAndRestore`)


def shaping_settings(config, source, builder_options):
    """The settings a backup must share to resume: model, sizes, data (spec, counts, names), batch size, schedule.

    The counts catch a folder whose files were added or removed since: its
    held-out test split would be drawn anew, over images trained on; the
    names' digest catches a file renamed, or one removed and one added.
    """
    options = config.read_options()
    # Where the files are is not what they are; the size and channels read
    # are the image spec's (the flags may only restate the files' own).
    for flag in ("data_dir", "image_size", "channels"):
        options.pop(flag)
    return {
        "model": config.model,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(builder_options.items())},
        "data": source.spec.source,
        "read_options": options,
        "image_spec": source.spec.get_config(),
        "examples": {split: source.count(split) for split in ("train", "test")},
        "file_names": source.file_names_digest(),
        "limit": config.limit,
        "batch_size": config.batch_size,
        # A schedule is no variable of the optimizer: changed, Keras skipped
        # the backup's optimizer state, Adam's moments and step count.
        "learning_rate_schedule": config.learning_rate_schedule,
    }


# Settings that backups of earlier aekeras versions do not record; such a backup resumes unchecked on them.
_SETTINGS_ADDED_SINCE = ("examples", "file_names", "learning_rate_schedule")


def completed_epochs(backup_dir):
    """The epochs a backup holds, 0 if there is none.

    Raises:
        SettingsChangedError: if its count is not `{"epoch": N}` with N >= 0.
    """
    path = Path(backup_dir) / _METADATA_FILE
    if not path.is_file():
        return 0
    epoch = _read_json(path).get("epoch")
    if type(epoch) is not int or epoch < 0:  # bool is an int, and no count
        raise damaged(path, f'"epoch" is {epoch!r}, not a count of epochs')
    return epoch


def damaged(path, reason):
    """The one-line refusal of a run's backup file or history that was garbled, cut short or edited."""
    return SettingsChangedError(
        f"{path} is damaged ({reason}); pass --restart to discard the backup and start afresh"
    )


def _read_json(path):
    """The JSON object in `path`; anything else is a damaged backup, not a Python error."""
    try:
        value = json.loads(Path(path).read_bytes())
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise damaged(path, f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise damaged(path, f"holds a {type(value).__name__}, not a JSON object")
    return value


def _check_readable(backup_dir):
    """Refuses a backup whose weights or random state cannot be read, before anything is written.

    Keras and numpy raised deep in the resume, as a traceback; a backup
    cut short (a full disk, a copy interrupted) is refused in one line.
    """
    import h5py
    import numpy as np

    weights = Path(backup_dir) / _WEIGHTS_FILE
    try:
        with h5py.File(weights, "r"):
            pass
    except OSError as e:
        code = system_errno(e)
        if code is not None:  # HDF5's words for the system's refusal (`ulimit -n`), no damage
            raise OSError(code, os.strerror(code), str(weights)) from None
        raise damaged(weights, f"not a readable HDF5 file: {str(e).split('(')[-1].rstrip(')')}") from None
    states = Path(backup_dir) / SEED_STATES_FILE
    if states.is_file():
        try:
            np.load(states, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            if system_errno(e) is not None:
                raise
            raise damaged(states, f"not a numeric .npy array: {str(e).split('.')[0]}") from None


def read_seed_states(backup_dir, variables):
    """The backup's random states, one for each of the model's seed generators (`variables`); None if it has none.

    Raises:
        SettingsChangedError: if the states do not fit the generators, one
            each: a model class that gained or lost a generator since the
            backup, or a file edited by hand.
    """
    import numpy as np

    path = Path(backup_dir) / SEED_STATES_FILE
    if not path.is_file():
        return None
    states = np.load(path, allow_pickle=False)
    if not variables:  # saved as `np.array([])`, of floats
        fits = states.ndim > 0 and len(states) == 0
    else:
        fits = states.shape == (len(variables), *variables[0].shape) and states.dtype.kind in "iu"
    if not fits:
        needed = (len(variables), *(tuple(variables[0].shape) if variables else ()))
        raise damaged(
            path,
            f"holds random states of shape {states.shape} and type {states.dtype}, where the model's seed "
            f"generators need integers of shape {needed}",
        )
    return states


def remove_backup(backup_dir):
    """Removes a backup, its epoch count first.

    Removed file by file, a backup cut short (a kill) could keep its count
    without its weights, and resume fresh weights as trained ones.
    """
    (Path(backup_dir) / _METADATA_FILE).unlink(missing_ok=True)
    shutil.rmtree(backup_dir, ignore_errors=True)


def _differences(recorded, settings, prefix=""):
    """What `settings` changes of `recorded`; a setting recorded that no longer shapes a run is left out."""
    changes = []
    for key in sorted(settings):
        old, new = recorded.get(key), settings.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key} {old!r} -> {new!r}")
    return changes


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RunClock:
    """The run's state across attempts: its settings, training seconds and resumes.

    Args:
        backup_dir: the run's backup folder.
        settings: `shaping_settings` of this attempt.
        discard_backup: start afresh whatever the folder holds (`--restart`,
            which deletes it once every check has passed).

    Raises:
        SettingsChangedError: if the folder holds the backup of a run made
            with other settings.
    """

    def __init__(self, backup_dir, settings, discard_backup=False):
        self.backup_dir = Path(backup_dir)
        self.settings = settings
        self.seconds_before, self.resumes = 0.0, 0
        # A backup counts its epoch last: without the count (a Ctrl-C as
        # training began) it holds no completed epoch to resume after.
        resumes = (self.backup_dir / _METADATA_FILE).is_file() and not discard_backup
        self.resumed_after = completed_epochs(self.backup_dir) if resumes else None
        if self.resumed_after is not None:
            self._load()
        self.stopped = None
        self.start()

    def start(self):
        """Starts this attempt's training time (`train` again once the model is built and compiled)."""
        self.started = time.time()

    def _load(self):
        where = self.backup_dir.parent
        if not (self.backup_dir / _WEIGHTS_FILE).is_file():
            raise SettingsChangedError(
                f"{where} holds a backup that counts {self.resumed_after} epochs but has no weights (its "
                "removal was cut short, or its files were moved); pass --restart to discard it and start afresh"
            )
        _check_readable(self.backup_dir)
        path = self.backup_dir / STATE_FILE
        recorded = _read_json(path) if path.is_file() else {}
        kept = recorded.get("settings", {})
        seconds, resumes = recorded.get("seconds", 0.0), recorded.get("resumes", 0)
        if not isinstance(kept, dict) or not _is_number(seconds) or type(resumes) is not int:
            raise damaged(path, 'expected {"settings": {...}, "seconds": S, "resumes": N}')
        settings = {k: v for k, v in self.settings.items() if k in kept or k not in _SETTINGS_ADDED_SINCE}
        changes = _differences(kept, settings)
        if changes and all(change.startswith("file_names ") for change in changes):
            raise SettingsChangedError(
                f"{where} holds the backup of an interrupted run whose data folder had other files: some were "
                "renamed, or some removed and as many added, since; restore them to resume it, or pass "
                "--restart to discard the backup and start afresh"
            )
        if changes:
            shown = "; ".join(changes[:4]) + ("; ..." if len(changes) > 4 else "")
            raise SettingsChangedError(
                f"{where} holds the backup of an interrupted run with other settings ({shown}); rerun with "
                "its settings to resume it, or pass --restart to discard the backup and start afresh"
            )
        self.seconds_before = float(recorded.get("seconds", 0.0))
        self.resumes = int(recorded.get("resumes", 0)) + 1

    @property
    def seconds(self):
        """Training seconds over every attempt, this one up to now or to `stop`."""
        return self.seconds_before + (self.stopped or time.time()) - self.started

    def stop(self):
        """Ends this attempt's count: what follows training (its test figures, the export) is not training."""
        self.stopped = time.time()

    def save(self):
        """Writes the state beside the backup, whole or not at all."""
        state = {"settings": self.settings, "seconds": round(self.seconds, 2), "resumes": self.resumes}
        text = json.dumps(state, indent=2) + "\n"
        write_atomically(self.backup_dir / STATE_FILE, lambda partial: partial.write_text(text))
