"""The callbacks of a training run: the NaN stop, atomic backups, and the run's files; and a fit that stops at a batch's end on Ctrl-C."""

import contextlib
import csv
import json
import os
from pathlib import Path

import keras
import numpy as np

from aekeras.interrupts import ctrl_c_kept, raise_if_pressed
from aekeras.models.blocks import load_with_older_weight_names
from aekeras.models.nonfinite import NonFiniteStop
from aekeras.staging import write_atomically
from aekeras.training.resume import SEED_STATES_FILE, read_seed_states

# Where every worker keeps its backup, in its run folder.
BACKUP_DIR = "backup"
# The files a run's chief writes in its folder besides the backup.
CHECKPOINTS_DIR = "checkpoints"
HISTORY_FILE = "history.csv"
LOGS_DIR = "logs"


def seed_state_variables(model):
    """The model's `SeedGenerator` states (its noise and sampling), which Keras's weights files leave out.

    Without them a resumed run would draw the noise of its first epochs again.
    """
    return [v for v in model.variables if v.name == "seed_generator_state"]


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose files are replaced whole, never rewritten in place.

    Keras writes the backup in place, so a kill during the write leaves a
    file that cannot be restored. Here each file is written under a
    temporary name and renamed over the old one. The weights and the random
    state go first and the epoch count last, so a kill between the renames
    repeats an epoch rather than losing one; the run's state (`clock`) goes
    between them, so a backup that counts an epoch always has the settings
    it was made with.
    """

    def __init__(self, backup_dir, clock=None):
        # Kept after training: the runner deletes it once the run is
        # evaluated and published, so an interrupt before that resumes.
        super().__init__(backup_dir, delete_checkpoint=False)
        self.clock = clock

    def _load_model(self):
        # Keras's weights file holds a constant learning rate with the
        # optimizer's state: restored, it would override the rate this run
        # was given (the NaN stop's advice, a lower --learning-rate, among
        # them). A schedule is not a variable, and resumes at its step.
        rate = getattr(self.model.optimizer, "learning_rate", None)
        given_rate = rate.numpy() if isinstance(rate, keras.Variable) else None
        # A backup written by an earlier aekeras version resumes too.
        load_with_older_weight_names(super()._load_model)
        if given_rate is not None:
            rate.assign(given_rate)
        if Path(self._training_metadata_path).is_file():
            variables = seed_state_variables(self.model)
            states = read_seed_states(self.backup_dir, variables)
            if states is not None:  # a backup of an earlier version has none
                for variable, value in zip(variables, states, strict=True):
                    variable.assign(value)

    def _save_weights(self, path):
        try:
            self.model.save_weights(path)
        except BaseException:
            _close_h5_files(path)
            raise

    def _save_model(self):
        Path(self.backup_dir).mkdir(parents=True, exist_ok=True)
        write_atomically(self._weights_path, self._save_weights)
        states = np.array([v.numpy() for v in seed_state_variables(self.model)])
        write_atomically(Path(self.backup_dir) / SEED_STATES_FILE, lambda partial: np.save(partial, states))
        if self.clock is not None:
            self.clock.save()
        position = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        write_atomically(
            self._training_metadata_path, lambda partial: partial.write_text(json.dumps(position))
        )


def _close_h5_files(path):
    """Closes what a failed Keras `save_weights` left open of the HDF5 file at `path`.

    Keras closes its file only when every write succeeded. Left open on a
    full disk, HDF5 flushed it as the process ended, failed again, and the
    process died of a segmentation fault after its one line.
    """
    import h5py

    name = os.fsencode(os.path.abspath(path))
    for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        if os.fsencode(os.path.abspath(os.fsdecode(file_id.name))) == name:
            with contextlib.suppress(Exception):  # its flush fails as the write did
                h5py.File(file_id).close()


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves `folder/epoch-NNN.keras` after every epoch, written whole under a hidden name, then renamed.

    Keras's `ModelCheckpoint` writes in place: an interrupt during the write
    would leave a checkpoint that cannot be loaded. Only the `keep` latest
    are kept (0: every one): each holds the model and its optimizer's state,
    129 MB for a VAE of two hidden layers of 2,000, so that 500 epochs
    filled 65 GB.
    """

    def __init__(self, folder, keep=0):
        super().__init__()
        self.folder = Path(folder)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        write_atomically(self.folder / f"epoch-{epoch + 1:03d}.keras", self.model.save)

    # Pruned as the next epoch begins, once the backup of the one before is
    # written: pruned at its end, with `keep` 1, a kill before that backup
    # left a run resuming after an epoch whose checkpoint was gone (and the
    # NaN stop naming it). The folder's, not this process's: an earlier
    # attempt's count too.
    def on_epoch_begin(self, epoch, logs=None):
        self._prune()

    def on_train_end(self, logs=None):
        self._prune()

    def _prune(self):
        if self.keep:
            for earlier in epoch_checkpoints(self.folder)[: -self.keep]:
                earlier.unlink(missing_ok=True)


def epoch_checkpoints(folder):
    """The `epoch-N.keras` files in `folder`, oldest epoch first (epoch 1000 after 999, as names would not sort)."""
    epochs = {}
    for path in Path(folder).glob("epoch-*.keras"):
        number = path.stem.removeprefix("epoch-")
        if number.isdigit():
            epochs[path] = int(number)
    return sorted(epochs, key=epochs.get)


class StopAfterCtrlC(keras.callbacks.Callback):
    """Stops `fit` at the next batch after a Ctrl-C (`interrupts.raise_if_pressed`).

    The safe point where `ctrl_c_kept(at_safe_points=True)` raises it, and
    where one that a finalizer dropped is raised: without it the run
    trained every epoch left, and stopped when the block ended.
    """

    def on_train_batch_end(self, batch, logs=None):
        raise_if_pressed()

    def on_test_batch_end(self, batch, logs=None):
        raise_if_pressed()


def fit_stopping_at_a_batch(model, *args, callbacks=None, **kwargs):
    """`model.fit(*args, **kwargs)`, a first Ctrl-C during it raised at the end of the batch under way.

    For the fits of work that takes a Ctrl-C wherever it lands (the
    report's analyses): raised inside TensorFlow's C code, as an epoch's
    iterator is made, an interrupt once corrupted the heap and the process
    aborted (`ctrl_c_kept`). A second Ctrl-C is raised at once.
    """
    with ctrl_c_kept(at_safe_points=True):
        return model.fit(*args, callbacks=[*(callbacks or ()), StopAfterCtrlC()], **kwargs)


class HistoryLogger(keras.callbacks.CSVLogger):
    """Keras's `CSVLogger`, its columns the same whichever epoch comes first or resumes the file.

    Keras fixes the columns at the first epoch it logs: where that epoch
    was not validated, they left out the figures only evaluation gives (the
    denoising model's `val_clean_reconstruction_loss`), and a resumed run
    took its own first epoch's and wrote rows longer than the header it
    appended under. Here a file being appended to keeps its header's
    columns, and a new one has a column for every figure the model
    reports in evaluation.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self.append_header:  # appending under an existing header
            with open(self.filename, newline="") as f:
                self.keys = next(csv.reader(f))[1:]  # after "epoch"

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None:
            logs = logs or {}
            trained = sorted(name for name in logs if not name.startswith("val_"))
            evaluated = {*trained, *getattr(self.model, "evaluation_term_names", ())}
            validated = {f"val_{name}" for name in evaluated} | {
                name for name in logs if name.startswith("val_")
            }
            self.keys = trained + sorted(validated)
        super().on_epoch_end(epoch, logs)


def run_callbacks(run_dir, resuming, is_chief, clock=None, keep_checkpoints=0):
    """The callbacks of a run writing to `run_dir`; a worker other than the chief keeps only its backup.

    `clock`, a `RunClock`, is saved with every backup; `keep_checkpoints`
    is how many of the latest epochs' checkpoints stay (0: every one).
    """
    backup = AtomicBackupAndRestore(str(run_dir / BACKUP_DIR), clock)
    if not is_chief:
        # Every worker must resume from the same epoch, so each keeps a
        # backup; the rest is the chief's to write.
        return [StopAfterCtrlC(), NonFiniteStop(chief_keeps=True), backup]
    checkpoints = run_dir / CHECKPOINTS_DIR
    checkpoints.mkdir(parents=True, exist_ok=True)
    return [
        StopAfterCtrlC(),
        NonFiniteStop(checkpoints),
        # Logged and checkpointed before the backup: a crash between them
        # repeats the epoch (the resumed run drops its first row,
        # `trim_history`) rather than losing its row or its checkpoint.
        HistoryLogger(str(run_dir / HISTORY_FILE), append=resuming),
        EpochCheckpoint(checkpoints, keep_checkpoints),
        keras.callbacks.TensorBoard(str(run_dir / LOGS_DIR)),
        # Restores weights, optimizer and epoch after an interruption.
        backup,
    ]
