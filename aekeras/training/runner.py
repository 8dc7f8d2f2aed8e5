"""One training run, end to end: data, model, fit, evaluation, records and export.

A run keeps its working files in `run_dir/<model>/` (checkpoints,
TensorBoard logs, the history CSV, the backup that makes it resumable, the
final `.keras` model) and publishes a SavedModel as the next version of
`out/<model>/`. Under `strategy="multi_worker"` every worker of the cluster
that `TF_CONFIG` describes runs the same call; the chief writes all of the
above, and each other worker keeps only its backup and its `model.keras`,
in `run_dir/<model>/<task type>-<index>/`.
"""

import dataclasses
import json
import shutil
import time
from pathlib import Path

import keras

from aekeras import data, export
from aekeras.data.sources import FolderSource
from aekeras.registry import build_model, get_model
from aekeras.training import distribute
from aekeras.training.callbacks import run_callbacks
from aekeras.training.evaluate import evaluate_model
from aekeras.training.records import SETTINGS_FILE, environment, read_history


def open_data(config):
    """The run's data source, read options applied (errors before anything is written)."""
    options = config.read_options()
    return data.open_source(config.data, **{k: v for k, v in options.items() if v is not None})


def build(config, image_spec):
    """The untrained, compiled model of a config, for images of `image_spec`."""
    model = build_model(config.model, image_spec, seed=config.seed, **config.options)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        steps_per_execution=config.steps_per_execution,
    )
    return model


def _pipelines(config, source, model, strategy):
    """The training and test pipelines, split across workers as the source allows.

    Returns `(train, test, share)`; `share` says which share of a folder's
    files this worker reads, where each reads its own (else None).
    """
    load = dict(value_range=model.value_range, seed=config.seed)
    spec = source.spec

    def train_pipeline(shard=None, batch_size=config.batch_size):
        return data.make_dataset(
            source.examples("train", shard=shard),
            spec,
            batch_size=batch_size,
            shuffle=True,
            limit=config.limit,
            **load,
        )

    share = None
    if config.strategy == "multi_worker" and isinstance(source, FolderSource):
        # Each worker decodes only its own share of the files.
        train, shards = distribute.by_worker(strategy, train_pipeline, config.batch_size)
        ((index, count),) = shards
        share = {
            "worker": index,
            "workers": count,
            "images": source.count("train", (index, count)),
            "of": source.count("train"),
        }
    else:
        train = distribute.shard_by_batch(train_pipeline())
    test = data.make_dataset(source.examples("test"), spec, batch_size=config.batch_size, **load)
    return train, distribute.shard_by_batch(test), share


def _prepare_run_dir(config, strategy):
    run_dir = Path(config.run_dir) / config.model
    if not distribute.is_chief(strategy):
        run_dir = run_dir / distribute.worker_name(strategy)
    resuming = (run_dir / "backup").is_dir()
    if not resuming:
        # A fresh run must not inherit checkpoints of an earlier one.
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, resuming


def _record(config, source, model, strategy, metrics, run_dir, train_seconds):
    return {
        "settings": dataclasses.asdict(config),
        "data": {"source": source.spec.source, "options": config.read_options()},
        "image_spec": model.image_spec.get_config(),
        "replicas": strategy.num_replicas_in_sync,
        "model_config": model.get_config(),
        "test_metrics": metrics,
        "history": read_history(run_dir / "history.csv"),
        "train_seconds": round(train_seconds, 2),
        "environment": environment(),
    }


def train(config, source=None):
    """Trains, evaluates and exports the model a `TrainConfig` describes.

    `source`, the config's data source already opened, saves reading it twice.

    Returns:
        A dict with the settings, the data source and image spec, the test
        metrics, the history and the paths written (`export`, `model`,
        `run_dir`); the same dict, less the paths, is saved as `run.json`
        beside the export. A worker other than the chief returns only
        `test_metrics` and the paths, `export` being `None`.

    Raises:
        ValueError: for settings that cannot work (`aekeras.data.DataError`
            for data), before anything is written.
        FloatingPointError: if the loss became NaN or infinite; the
            checkpoints and the backup of the completed epochs are kept.
    """
    config.validate()
    strategy = distribute.distribution_strategy(config.strategy)
    source = source or open_data(config)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build(config, source.spec)
    if config.strategy == "multi_worker":
        model.train_step = distribute.vector_logs(model.train_step)
        model.test_step = distribute.vector_logs(model.test_step)
    train_data, test_data, share = _pipelines(config, source, model, strategy)
    run_dir, resuming = _prepare_run_dir(config, strategy)
    is_chief = distribute.is_chief(strategy)

    started = time.time()
    model.fit(
        train_data,
        epochs=config.epochs,
        callbacks=run_callbacks(run_dir, resuming, is_chief),
        verbose=config.verbose,
        shuffle=False,  # The dataset reshuffles itself every epoch.
    )
    train_seconds = time.time() - started
    _, evaluation = get_model(config.model).split_options(config.options)
    metrics = evaluate_model(model, test_data, config.seed, **evaluation)
    model_path = run_dir / "model.keras"
    model.save(model_path)
    result = {
        "test_metrics": metrics,
        "export": None,
        "model": str(model_path),
        "run_dir": str(run_dir),
        "data_share": share,
    }
    if is_chief:
        record = _record(config, source, model, strategy, metrics, run_dir, train_seconds)
        export_path = export.saved_model(model, config.out, config.model, settings=record)
        (run_dir / SETTINGS_FILE).write_text(json.dumps(record, indent=2) + "\n")
        result = {**record, **result, "export": str(export_path)}
    if config.strategy == "multi_worker":
        distribute.wait_for_all_workers(strategy)
    return result
