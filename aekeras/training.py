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

MODEL_NAMES = ("dense", "conv", "denoising", "contractive", "vae")
ARCHITECTURES = ("dense", "conv")


@dataclasses.dataclass
class TrainConfig:
    """The settings of one training run; defaults are the lecture's.

    Args:
        model: which model to train; one of `MODEL_NAMES`.
        latent_dim: size of the code; `None` for the model's default (dense
            and contractive 30, denoising 500 as in the lecture, VAE 20, conv
            a spatial 4x4x8 code).
        architecture: `"dense"` or `"conv"`, for denoising, contractive and
            VAE.
        tied_weights: tie decoder kernels to the encoder's (dense models).
        noise: the denoising model's noise, `"dropout"` (the lecture's),
            `"gaussian"` or `"salt_and_pepper"`.
        noise_level: drop probability, standard deviation or fraction.
        contraction_weight: lambda of the contractive penalty.
        beta: weight of the VAE's KL term.
        binarize: train the VAE on dynamically binarised images.
        nll_samples: importance samples for the VAE's test NLL (0 skips it).
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
    latent_dim: int = None
    architecture: str = "dense"
    tied_weights: bool = False
    noise: str = "dropout"
    noise_level: float = 0.5
    contraction_weight: float = 1e-4
    beta: float = 1.0
    binarize: bool = False
    nll_samples: int = 50
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
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r} (expected one of {ARCHITECTURES})"
            )
        for field in ("epochs", "batch_size"):
            value = getattr(self, field)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if self.latent_dim is not None and not (
            isinstance(self.latent_dim, int) and self.latent_dim > 0
        ):
            raise ValueError(f"latent_dim must be a positive integer, got {self.latent_dim!r}")
        if not (isinstance(self.nll_samples, int) and self.nll_samples >= 0):
            raise ValueError(f"nll_samples must be an integer >= 0, got {self.nll_samples!r}")
        if self.limit is not None and not (isinstance(self.limit, int) and self.limit > 0):
            raise ValueError(f"limit must be a positive integer, got {self.limit!r}")
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise ValueError(
                f"learning_rate must be a positive number, got {self.learning_rate!r}"
            )


def _plain_autoencoder(config, dense_latent_dim, **dense_kwargs):
    """The dense or conv autoencoder a denoising or contractive model wraps."""
    if config.architecture == "conv":
        return models.ConvAutoencoder(latent_dim=config.latent_dim)
    return models.DenseAutoencoder(
        latent_dim=config.latent_dim or dense_latent_dim,
        tied_weights=config.tied_weights,
        **dense_kwargs,
    )


def build_model(config):
    """The untrained model a config names."""
    if config.model == "dense":
        return models.DenseAutoencoder(
            latent_dim=config.latent_dim or 30, tied_weights=config.tied_weights
        )
    if config.model == "conv":
        return models.ConvAutoencoder(latent_dim=config.latent_dim)
    if config.model == "denoising":
        return models.DenoisingAutoencoder(
            _plain_autoencoder(config, 500),
            noise=config.noise,
            noise_level=config.noise_level,
            seed=config.seed,
        )
    if config.model == "contractive":
        # The classic contractive autoencoder: a sigmoid code on [0, 1] images.
        plain = _plain_autoencoder(
            config, 30, activation="sigmoid", output_activation="sigmoid", value_range=(0, 1)
        )
        return models.ContractiveAutoencoder(plain, contraction_weight=config.contraction_weight)
    if config.model == "vae":
        return models.VAE(
            architecture=config.architecture,
            latent_dim=config.latent_dim or 20,
            beta=config.beta,
            binarize=config.binarize,
            seed=config.seed,
        )
    raise ValueError(f"unknown model {config.model!r} (expected one of {MODEL_NAMES})")


def evaluate_model(model, test_data, nll_samples=50, seed=0):
    """The model's own test losses, plus comparable figures for every model.

    Returns `evaluate`'s metrics and `mse_01`, the mean squared error of
    clean reconstructions on the [0, 1] scale. For a VAE with `nll_samples`
    > 0 also `nll`, the importance-sampled test negative log-likelihood in
    nats on the test images binarised once with `seed`, and `neg_elbo` on the
    same images (k=1).
    """
    metrics = {k: float(v) for k, v in model.evaluate(test_data, verbose=0, return_dict=True).items()}
    low, high = model.value_range
    squared_errors, nll, neg_elbo = [], [], []
    rng = np.random.default_rng(seed)
    for images in test_data:
        reconstructions = model(images)
        squared_errors.append(
            keras.ops.convert_to_numpy(
                keras.ops.mean(keras.ops.square(reconstructions - images), axis=(1, 2, 3))
            ) / (high - low) ** 2
        )
        if isinstance(model, models.VAE) and nll_samples:
            binary = (rng.uniform(size=images.shape) < images.numpy()).astype(np.float32)
            nll.append(model.negative_log_likelihood(binary, nll_samples).numpy())
            neg_elbo.append(model.negative_log_likelihood(binary, 1).numpy())
    metrics["mse_01"] = float(np.mean(np.concatenate(squared_errors)))
    if nll:
        metrics["nll"] = float(np.mean(np.concatenate(nll)))
        metrics["neg_elbo"] = float(np.mean(np.concatenate(neg_elbo)))
    return metrics


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
    metrics = evaluate_model(model, test_data, config.nll_samples, config.seed)
    model_path = run_dir / "model.keras"
    model.save(model_path)

    record = {
        "settings": dataclasses.asdict(config),
        "model_config": model.get_config(),
        "test_metrics": metrics,
        "history": read_history(run_dir / "history.csv"),
        "train_seconds": round(train_seconds, 2),
        "environment": environment(),
    }
    export_path = export.saved_model(model, config.out, config.model, settings=record)
    (run_dir / export.SETTINGS_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "export": str(export_path), "model": str(model_path), "run_dir": str(run_dir)}
