"""Training runs: data, model, callbacks, evaluation and export in one call.

`train(TrainConfig(...))` is what `aekeras train` runs. A run keeps its
working files in `run_dir/<model>/` (checkpoints, TensorBoard logs, the
history CSV, the backup that makes it resumable, the final `.keras` model)
and publishes a SavedModel as the next version of `out/<model>/`.
"""

import csv
import dataclasses
import json
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import aekeras
from aekeras import data, export, models

MODEL_NAMES = ("dense",)


@dataclasses.dataclass
class TrainConfig:
    """The settings of one training run; defaults are the lecture's.

    Args:
        model: which model to train; one of `MODEL_NAMES`.
        latent_dim: size of the code (30; 500 for the over-complete model).
        tied_weights: tie decoder kernels to the encoder's (dense only).
        epochs: passes over the training set.
        batch_size: examples per step.
        learning_rate: Adam's learning rate.
        dataset: `"mnist"` or `"fashion_mnist"`.
        data_dir: folder of IDX files (else `AEKERAS_DATA_DIR`, then TFDS).
        limit: train on the first `limit` training examples only.
        seed: seeds the weights, the data order and any noise.
        out: where SavedModels are published, one folder per model.
        run_dir: where working files go, one folder per model; a run
            started again with the same folder resumes.
        verbose: Keras's `fit` verbosity (1 shows the progress bar).
    """

    model: str = "dense"
    latent_dim: int = 30
    tied_weights: bool = False
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 1e-3
    dataset: str = "mnist"
    data_dir: str = None
    limit: int = None
    seed: int = 0
    out: str = "saved_models"
    run_dir: str = "runs"
    verbose: int = 1

    def validate(self):
        """Raises ValueError naming the first setting that cannot work."""
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r} (expected one of {MODEL_NAMES})")
        if self.dataset not in data.DATASETS:
            raise ValueError(
                f"unknown dataset {self.dataset!r} (expected one of {data.DATASETS})"
            )
        for field in ("latent_dim", "epochs", "batch_size"):
            value = getattr(self, field)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if self.limit is not None and not (isinstance(self.limit, int) and self.limit > 0):
            raise ValueError(f"limit must be a positive integer, got {self.limit!r}")
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise ValueError(
                f"learning_rate must be a positive number, got {self.learning_rate!r}"
            )


def build_model(config):
    """The untrained model a config names."""
    if config.model == "dense":
        return models.DenseAutoencoder(
            latent_dim=config.latent_dim, tied_weights=config.tied_weights
        )
    raise ValueError(f"unknown model {config.model!r} (expected one of {MODEL_NAMES})")


def environment():
    """Library versions and machine, recorded with every run."""
    return {
        "aekeras": aekeras.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def read_history(path):
    """The per-epoch metrics of a run's `history.csv`, resumed epochs included.

    A run killed after logging an epoch but before backing it up logs that
    epoch again when it resumes; the last row of each epoch wins.
    """
    with open(path, newline="") as f:
        rows = list({row["epoch"]: row for row in csv.DictReader(f)}.values())
    keys = rows[0].keys() if rows else ()
    # CSVLogger adds val_* columns of "NA" when there is no validation data.
    return {
        key: [float(row[key]) for row in rows]
        for key in keys
        if not all(row[key] == "NA" for row in rows)
    }


def _callbacks(run_dir, resuming):
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    return [
        # Logged before the backup, so a crash between the two repeats an
        # epoch's row (read_history keeps the last) rather than losing it.
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
        # Restores weights, optimizer and epoch after an interruption; its
        # folder is deleted when training completes.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "epoch-{epoch:03d}.keras")),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        keras.callbacks.TerminateOnNaN(),
    ]


def train(config):
    """Trains, evaluates and exports the model a `TrainConfig` describes.

    Returns:
        A dict with the settings, the test metrics, the history and the
        paths written (`export`, `model`, `run_dir`); the same dict, less
        the paths, is saved as `run.json` beside the export.
    """
    config.validate()
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))

    load = dict(
        batch_size=config.batch_size,
        value_range=model.value_range,
        data_dir=config.data_dir,
        seed=config.seed,
    )
    train_data = data.load(config.dataset, "train", limit=config.limit, **load)
    test_data = data.load(config.dataset, "test", **load)

    run_dir = Path(config.run_dir) / config.model
    resuming = (run_dir / "backup").is_dir()
    if not resuming:
        # A fresh run must not inherit checkpoints of an earlier one.
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)

    started = time.time()
    model.fit(
        train_data,
        epochs=config.epochs,
        callbacks=_callbacks(run_dir, resuming),
        verbose=config.verbose,
        shuffle=False,  # The dataset reshuffles itself every epoch.
    )
    train_seconds = time.time() - started
    if model.stop_training:
        raise FloatingPointError(
            f"training stopped: the loss became NaN or infinite; checkpoints "
            f"of the completed epochs are in {run_dir / 'checkpoints'}"
        )
    test_metrics = model.evaluate(test_data, verbose=0, return_dict=True)
    model_path = run_dir / "model.keras"
    model.save(model_path)

    record = {
        "settings": dataclasses.asdict(config),
        "model_config": model.get_config(),
        "test_metrics": {k: float(v) for k, v in test_metrics.items()},
        "history": read_history(run_dir / "history.csv"),
        "train_seconds": round(train_seconds, 2),
        "environment": environment(),
    }
    export_path = export.saved_model(model, config.out, config.model, settings=record)
    (run_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "export": str(export_path), "model": str(model_path), "run_dir": str(run_dir)}
