"""Training runs: data, model, callbacks, evaluation and export in one call.

`train(TrainConfig(...))` is what `aekeras train` runs. A run keeps its
working files in `run_dir/<model>/` (checkpoints, TensorBoard logs, the
history CSV, the backup that makes it resumable, the final `.keras` model)
and publishes a SavedModel as the next version of `out/<model>/`.

Under `strategy="multi_worker"` every worker of the cluster that `TF_CONFIG`
describes runs the same call; the chief writes all of the above, and each
other worker keeps only its backup and its `model.keras`, in
`run_dir/<model>/<task type>-<index>/`.
"""

import csv
import dataclasses
import json
import math
import os
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
STRATEGIES = ("default", "mirrored", "multi_worker")
TF_CONFIG_ENV = "TF_CONFIG"


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
        strategy: `"default"` (one device), `"mirrored"` (every local GPU,
            `tf.distribute.MirroredStrategy`) or `"multi_worker"` (the
            cluster in `TF_CONFIG`, `tf.distribute.MultiWorkerMirroredStrategy`).
            `batch_size` is the global batch, split across replicas.
        steps_per_execution: training steps run per call into the graph.
            More is faster for small models (BENCHMARKS.md), but callbacks
            then see only every n-th batch, so a NaN is reported at the end
            of its group of steps and the progress bar moves in jumps.
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
    strategy: str = "default"
    steps_per_execution: int = 1

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
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"unknown strategy {self.strategy!r} (expected one of {STRATEGIES})"
            )
        for field in ("epochs", "batch_size", "steps_per_execution"):
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


def check_tf_config():
    """Raises ValueError unless `TF_CONFIG` names a chief or worker of its cluster."""
    example = (
        '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    text = os.environ.get(TF_CONFIG_ENV)
    if not text:
        raise ValueError(f"strategy 'multi_worker' needs ${TF_CONFIG_ENV}, such as {example}")
    try:
        tf_config = json.loads(text)
        task = tf_config["task"]
        addresses = tf_config["cluster"][task["type"]]
        valid = (
            task["type"] in ("chief", "worker")
            and isinstance(addresses, list)
            and task["index"] in range(len(addresses))
        )
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise ValueError(
            f"${TF_CONFIG_ENV} {text} does not name a chief or worker task of its "
            f"cluster (expected JSON such as {example})"
        )


_strategies = {}


def distribution_strategy(name):
    """The `tf.distribute` strategy a `TrainConfig.strategy` names.

    Each is made once per process and reused: a second strategy's
    collectives clash with the first's. `"multi_worker"` configures
    collective ops, which TensorFlow allows only before it runs anything, so
    make it first.

    Raises:
        ValueError: for an unknown name, or `"multi_worker"` without a
            usable `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r} (expected one of {STRATEGIES})")
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _strategies:
        if name == "multi_worker":
            check_tf_config()
            _strategies[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            _strategies[name] = tf.distribute.MirroredStrategy()
    return _strategies[name]


def _shard_by_batch(dataset):
    """Gives each worker of a cluster its contiguous slice of every batch.

    Under `AutoShardPolicy.DATA` each global batch is split, worker i taking
    slice i, as replica i of one machine does: with `draw_for_global_batch`
    the examples and their random draws are the single-process ones. (The
    in-memory data has no files for the default policy to shard by.)
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _vector_logs(step):
    """Wraps a train or test step so that it returns 1-element vectors.

    Keras 3 reduces the logs of each multi-worker step with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars
    (tensorflow/tensorflow#72388); the mean over workers of 1-element
    vectors is the scalar Keras expects.
    """

    def step_with_vector_logs(data):
        return {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    return step_with_vector_logs


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss, naming epoch and batch.

    Keras's `TerminateOnNaN` lets the epoch end, so that epoch's checkpoint
    and backup would hold the broken weights; raising `FloatingPointError`
    here keeps the last good ones, and the backup to resume from.

    Args:
        checkpoints: the folder of per-epoch checkpoints, named in the
            message; `None` where this process writes none.
    """

    def __init__(self, checkpoints=None):
        super().__init__()
        self.checkpoints = checkpoints
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if math.isfinite(loss):
            return
        if self.epoch == 0:
            kept = "no epoch had completed, so there is no checkpoint"
        elif self.checkpoints is None:
            kept = f"the chief keeps the checkpoint of epoch {self.epoch}"
        else:
            kept = f"the last good checkpoint is {self.checkpoints / f'epoch-{self.epoch:03d}.keras'}"
        raise FloatingPointError(
            f"training stopped: the loss became {loss} at epoch {self.epoch + 1}, "
            f"batch {batch + 1}; {kept}, and the same command resumes after epoch "
            f"{self.epoch}"
        )


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose files are replaced whole, never rewritten in place.

    Keras writes the backup in place, so a kill during the write leaves a
    file that cannot be restored. Here each file is written under a
    temporary name and renamed over the old one; the weights go first, so a
    kill between the two renames repeats an epoch rather than losing one.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        staging = os.path.join(self.backup_dir, "staging.weights.h5")
        self.model.save_weights(staging, overwrite=True)
        os.replace(staging, self._weights_path)
        staging = f"{self._training_metadata_path}.staging"
        with open(staging, "w") as f:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
        os.replace(staging, self._training_metadata_path)


def _callbacks(run_dir, resuming, is_chief):
    backup = AtomicBackupAndRestore(str(run_dir / "backup"))
    if not is_chief:
        # Every worker must resume from the same epoch, so each keeps a
        # backup; the rest is the chief's to write.
        return [StopOnNonFiniteLoss(), backup]
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    return [
        StopOnNonFiniteLoss(checkpoints),
        # Logged and checkpointed before the backup: a crash between them
        # repeats the epoch (read_history keeps the last row) rather than
        # losing its row or leaving a half-written checkpoint for good.
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
        keras.callbacks.ModelCheckpoint(str(checkpoints / "epoch-{epoch:03d}.keras")),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        # Restores weights, optimizer and epoch after an interruption; its
        # folder is deleted when training completes.
        backup,
    ]


def _wait_for_all_workers(strategy):
    """Returns once every worker got here (a one-number all-reduce).

    A worker that exits while the chief is still exporting stops sending
    heartbeats, which the chief's cluster logs as a crash.
    """
    strategy.reduce("SUM", strategy.run(tf.function(lambda: tf.constant(0.0))), axis=None)


def train(config):
    """Trains, evaluates and exports the model a `TrainConfig` describes.

    Returns:
        A dict with the settings, the test metrics, the history and the
        paths written (`export`, `model`, `run_dir`); the same dict, less
        the paths, is saved as `run.json` beside the export. A worker other
        than the chief returns only `test_metrics` and the paths, `export`
        being `None`.

    Raises:
        FloatingPointError: if the loss became NaN or infinite; the
            checkpoints and the backup of the completed epochs are kept.
    """
    config.validate()
    strategy = distribution_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            steps_per_execution=config.steps_per_execution,
        )
    if config.strategy == "multi_worker":
        model.train_step = _vector_logs(model.train_step)
        model.test_step = _vector_logs(model.test_step)

    load = dict(
        batch_size=config.batch_size,
        value_range=model.value_range,
        data_dir=config.data_dir,
        seed=config.seed,
    )
    train_data = _shard_by_batch(data.load(config.dataset, "train", limit=config.limit, **load))
    test_data = _shard_by_batch(data.load(config.dataset, "test", **load))

    run_dir = Path(config.run_dir) / config.model
    is_chief = strategy.extended.should_checkpoint
    if not is_chief:
        resolver = strategy.cluster_resolver
        run_dir = run_dir / f"{resolver.task_type}-{resolver.task_id}"
    resuming = (run_dir / "backup").is_dir()
    if not resuming:
        # A fresh run must not inherit checkpoints of an earlier one.
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)

    started = time.time()
    model.fit(
        train_data,
        epochs=config.epochs,
        callbacks=_callbacks(run_dir, resuming, is_chief),
        verbose=config.verbose,
        shuffle=False,  # The dataset reshuffles itself every epoch.
    )
    train_seconds = time.time() - started
    metrics = evaluate_model(model, test_data, config.nll_samples, config.seed)
    model_path = run_dir / "model.keras"
    model.save(model_path)
    result = {"test_metrics": metrics, "export": None, "model": str(model_path), "run_dir": str(run_dir)}
    if is_chief:
        record = {
            "settings": dataclasses.asdict(config),
            "replicas": strategy.num_replicas_in_sync,
            "model_config": model.get_config(),
            "test_metrics": metrics,
            "history": read_history(run_dir / "history.csv"),
            "train_seconds": round(train_seconds, 2),
            "environment": environment(),
        }
        export_path = export.saved_model(model, config.out, config.model, settings=record)
        (run_dir / export.SETTINGS_FILE).write_text(json.dumps(record, indent=2) + "\n")
        result = {**record, **result, "export": str(export_path)}
    if config.strategy == "multi_worker":
        _wait_for_all_workers(strategy)
    return result
