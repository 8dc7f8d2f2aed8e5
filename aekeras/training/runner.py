"""One training run, end to end: data, model, fit, evaluation, records and export.

A run keeps its working files in `run_dir/<model>/` (checkpoints,
TensorBoard logs, the history CSV, the backup that makes it resumable, the
final `.keras` model) and publishes a SavedModel as the next version of
`out/<model>/`. Under `strategy="multi_worker"` every worker of the cluster
that `TF_CONFIG` describes runs the same call; the chief writes all of the
above, and each other worker keeps only its backup and its `model.keras`,
in `run_dir/<model>/<task type>-<index>/`.
"""

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from aekeras import data, export, optimizers, progress
from aekeras.callbacks import LatentProjector, ReconstructionImages
from aekeras.data.sources import FolderSource
from aekeras.errors import ClusterError, RunInUseError, SettingsChangedError, TrainingInterrupted
from aekeras.interrupts import ctrl_c_kept
from aekeras.registry import build_model, get_model
from aekeras.staging import locked, made_folder, remove_partials, write_atomically
from aekeras.training import distribute
from aekeras.training.callbacks import (
    BACKUP_DIR,
    CHECKPOINTS_DIR,
    HISTORY_FILE,
    LOGS_DIR,
    run_callbacks,
    seed_state_variables,
)
from aekeras.training.evaluate import evaluate_model
from aekeras.training.records import SETTINGS_FILE, check_history, environment, read_history, trim_history
from aekeras.training.resume import (
    RunClock,
    completed_epochs,
    read_seed_states,
    remove_backup,
    shaping_settings,
)

# Test images whose codes TensorBoard's projector shows, at most.
PROJECTED_IMAGES = 1000
# Graphs of fewer nodes skip Grappler, TensorFlow's graph optimizer (its
# default skips fewer than 4). Grappler optimizes each tf.data function
# afresh whenever an iterator starts, as `fit` does every epoch for training
# and for validation: about 10 ms per iterator on BENCHMARKS.md's machine
# (README, "Speed"), spent on functions of a few nodes it cannot improve.
# The training step's graph has hundreds (430 for the dense model).
SMALL_GRAPH_NODES = 64
# The test split is read in batches of at least the training batch, and up
# to this many images or float32 bytes: evaluating 5,000 images in batches
# of 2 (`--batch-size 2`) took a minute of Python's per-batch cost, and the
# figures are per-example means whatever the batch.
MAX_TEST_BATCH = 1000
TEST_BATCH_BYTES = 8 << 20
MODEL_FILE = "model.keras"
# What a run leaves in its folder besides its backup; a fresh run sets them aside.
EARLIER_RUN_FILES = (MODEL_FILE, CHECKPOINTS_DIR, HISTORY_FILE, LOGS_DIR, SETTINGS_FILE)


def open_data(config):
    """The run's data source, read options applied (errors before anything is written).

    A folder's scan and decoding show their progress unless `--quiet`.
    """
    options = config.read_options()
    given = {k: v for k, v in options.items() if v is not None}
    return data.open_source(config.data, verbose=config.verbose == 1, **given)


def compile_model(model, config, train_data):
    """Compiles with `aekeras.optimizers.Adam` at the config's learning rate, decayed as its schedule says.

    `"cosine"` decays to a tenth of the rate over the run's steps (the
    batches of `train_data` times the epochs).
    """
    learning_rate = config.learning_rate
    if config.learning_rate_schedule == "cosine":
        total = _steps_per_epoch(train_data, config) * config.epochs
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, total, alpha=0.1)
    model.compile(
        optimizer=optimizers.Adam(learning_rate),
        steps_per_execution=config.steps_per_execution,
        batch_shards=config.batch_shards,
    )


def _steps_per_epoch(dataset, config):
    """The training batches an epoch holds; a schedule over the run needs them."""
    cardinality = getattr(dataset, "cardinality", None)
    steps = int(cardinality()) if callable(cardinality) else -1
    if steps < 1:
        raise ValueError(
            f"learning_rate_schedule {config.learning_rate_schedule!r} needs the number of batches an "
            "epoch holds, and this pipeline does not know it; use the constant schedule"
        )
    return steps


def _order_seed(seed, resumed_after):
    """The seed of the training order: the run's, or for a run resuming after epoch k one drawn from both.

    The pipeline's order restarts with its seed in every process: a resumed
    run would otherwise take its first epochs' orders again.
    """
    if not resumed_after:
        return seed
    return int(np.random.SeedSequence([seed, resumed_after]).generate_state(1)[0])


def _pipelines(config, source, model, strategy, order_seed=None):
    """The training and test pipelines, split across workers as the source allows.

    `order_seed` seeds the training order (`_order_seed`; default `config.seed`).

    Returns `(train, test, share)`; `share` says which share of a folder's
    files this worker reads, where each reads its own (else None).
    """
    load = dict(value_range=model.value_range, seed=config.seed, labels=model.conditioned)
    spec = source.spec

    # 8-bit pixels as stored, for the model to scale in its step; under a
    # strategy, Keras averages the first batch over the replicas to build
    # the model, which collectives cannot do in uint8.
    keep_uint8 = config.strategy == "default"

    def train_pipeline(shard=None, batch_size=config.batch_size):
        return data.make_dataset(
            source.examples("train", shard=shard, limit=config.limit),
            spec,
            batch_size=batch_size,
            shuffle=True,
            limit=config.limit,
            keep_uint8=keep_uint8,
            **{**load, "seed": config.seed if order_seed is None else order_seed},
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
        train = train_pipeline()
    test_batch = max(config.batch_size, min(MAX_TEST_BATCH, TEST_BATCH_BYTES // (4 * spec.size)))
    test = data.make_dataset(source.examples("test"), spec, batch_size=test_batch, **load)
    return train, test, share


def _run_dir(config, strategy):
    run_dir = Path(config.run_dir) / config.run_name
    if not distribute.is_chief(strategy):
        run_dir = run_dir / distribute.worker_name(strategy)
    return run_dir


def _run_clock(config, source, run_dir):
    """The run's `RunClock`, its backup read once and nothing written (`--restart`: as if there were none).

    A fresh run's earlier files are set aside by `train` (`_set_aside_earlier_run`).

    Raises:
        SettingsChangedError: if the backup there is of a run with other
            settings, or of more epochs than `config.epochs`, or it or the
            run's history is damaged (and `config.restart` is not set).
    """
    builder_options, _ = get_model(config.model).split_options(config.options)
    settings = shaping_settings(config, source, builder_options)
    clock = RunClock(run_dir / BACKUP_DIR, settings, discard_backup=config.restart)
    if clock.resumed_after is not None and clock.resumed_after > config.epochs:
        raise SettingsChangedError(
            f"{run_dir} holds the backup of an interrupted run that had trained {clock.resumed_after} "
            f"epochs, more than --epochs {config.epochs}; pass --epochs {clock.resumed_after} or more to "
            "finish it, or --restart to discard the backup and start afresh"
        )
    if clock.resumed_after is not None:
        check_history(run_dir / HISTORY_FILE, clock.resumed_after)  # trimmed, then read once trained
    return clock


def _ready_run_dir(run_dir, clock):
    """The run folder made ready, once every check has passed.

    A backup not resumed goes (`--restart`, or one that counts no epoch:
    Keras would load its weights, if any, into a fresh run), and so do an
    interrupted save's leftovers.
    """
    if clock.resumed_after is None:
        remove_backup(run_dir / BACKUP_DIR)
    for folder in (run_dir, run_dir / CHECKPOINTS_DIR):
        remove_partials(folder)  # of a run killed while it saved
    if clock.resumed_after is not None:
        trim_history(run_dir / HISTORY_FILE, clock.resumed_after)
    run_dir.mkdir(parents=True, exist_ok=True)


def _set_aside_earlier_run(run_dir):
    """Moves an earlier run's files to `run_dir/previous/<UTC time>/` (returned; None if there were none).

    A fresh run must not inherit them (its checkpoints, history and logs
    would mix with theirs), nor delete them before it has anything of its
    own: a Ctrl-C in its first epoch would then leave neither run.
    """
    found = [run_dir / name for name in EARLIER_RUN_FILES if (run_dir / name).exists()]
    if not found:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = run_dir / "previous" / stamp
    suffix = 1
    while kept.exists():  # two fresh runs within a second
        kept, suffix = run_dir / "previous" / f"{stamp}-{suffix}", suffix + 1
    kept.mkdir(parents=True)
    for path in found:
        os.replace(path, kept / path.name)
    return kept


def _pictures(source, count=PROJECTED_IMAGES):
    """The first `count` test images as stored and their labels, for TensorBoard's pictures.

    As stored: held for the whole run, 1,000 RGB images of 512x512 took
    3 GB as float32 beside training, 0.8 as the uint8 pixels they are.
    """
    # Only these are decoded: the whole split was, a second time beside the test pipeline's.
    return data.arrays_of(source.examples("test", limit=count), source.spec, unit=False)


def _fit(model, train_data, test_data, config, run_dir, clock, is_chief, source):
    """`model.fit` with the run's callbacks; an interrupt says what was kept."""
    callbacks = run_callbacks(
        run_dir, clock.resumed_after is not None, is_chief, clock, config.keep_checkpoints
    )
    # The pictures run the model on the chief alone, which a multi-worker
    # cluster's collectives cannot do.
    if is_chief and config.strategy != "multi_worker":
        images, labels = _pictures(source)
        logs = run_dir / LOGS_DIR
        callbacks[-1:-1] = [
            ReconstructionImages(logs / "images", images[:8], labels=None if labels is None else labels[:8]),
            LatentProjector(logs / "projector", images, labels, source.spec.class_names),
        ]
    try:
        with ctrl_c_kept(at_safe_points=True):  # the callbacks' StopAfterCtrlC
            model.fit(
                train_data,
                epochs=config.epochs,
                validation_data=test_data if config.validation_freq else None,
                validation_freq=config.validation_freq or 1,
                callbacks=callbacks,
                verbose=progress.fit_verbosity(config.verbose),
                shuffle=False,  # The dataset reshuffles itself every epoch.
            )
    except KeyboardInterrupt:
        raise TrainingInterrupted(run_dir, completed_epochs(run_dir / BACKUP_DIR), config.epochs) from None


def _record(config, source, model, strategy, metrics, run_dir, clock):
    return {
        "settings": dataclasses.asdict(config),
        "data": {"source": source.spec.source, "options": config.read_options()},
        "image_spec": model.image_spec.get_config(),
        "replicas": strategy.num_replicas_in_sync,
        "batch_shards": model.batch_shards,
        "model_config": model.get_config(),
        "test_metrics": metrics,
        "history": read_history(run_dir / HISTORY_FILE),
        "train_seconds": round(clock.seconds, 2),
        "resumes": clock.resumes,
        "environment": environment(),
    }


def configure_tensorflow(config):
    """Sets what `aekeras train` sets for its process: threads per op, and Grappler's smallest graph.

    Call it before TensorFlow has run anything: both take effect only then
    (`use_intra_op_threads`). Grappler's smallest graph is
    `SMALL_GRAPH_NODES` unless the process already set one
    (`tf.config.optimizer.set_experimental_options`).
    """
    use_intra_op_threads(config)
    if "min_graph_nodes" not in tf.config.optimizer.get_experimental_options():
        tf.config.optimizer.set_experimental_options({"min_graph_nodes": SMALL_GRAPH_NODES})


def use_intra_op_threads(config):
    """Sets the threads each TensorFlow op may use, as `config.intra_op_threads` says.

    `None` takes the model's default (`ModelEntry.default_intra_op_threads`)
    if TensorFlow has not started yet, and otherwise leaves it as it is; 0
    is TensorFlow's own choice (one per core).

    Raises:
        ValueError: if a number is asked of a TensorFlow already started
            with another; it fixes its thread pools when it starts.
    """
    asked = config.intra_op_threads
    threads = asked if asked is not None else get_model(config.model).default_intra_op_threads(config.options)
    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        if asked is None:
            return  # a default only: TensorFlow keeps the threads it started with
        raise ValueError(
            f"intra_op_threads {threads} must be set before TensorFlow starts; TensorFlow is already "
            "running in this process (set it in a fresh one, or leave it unset)"
        ) from None


def _prepare(config, source, strategy, run_dir):
    """The compiled model, its data and its run's clock, every check made before anything is written."""
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(config.model, source.spec, seed=config.seed, **config.options)
    if config.strategy == "multi_worker":
        model.train_step = distribute.vector_logs(model.train_step)
        model.test_step = distribute.vector_logs(model.test_step)
    if distribute.is_chief(strategy):
        # Before training: found at publishing, either stopped a trained run.
        export.check_room_for_a_version(Path(config.out) / config.run_name)
        if not config.allow_contract_change:
            export.check_contract(model, config.out, config.run_name)
    clock = _run_clock(config, source, run_dir)
    if clock.resumed_after is not None:  # refused before anything is written, not as training begins
        read_seed_states(run_dir / BACKUP_DIR, seed_state_variables(model))
    if config.strategy == "multi_worker":
        # Before anything is written: workers that differ fail mid-run, or split each batch otherwise.
        distribute.check_same_run(strategy, _cluster_settings(config, clock))
    order_seed = _order_seed(config.seed, clock.resumed_after)
    train_data, test_data, share = _pipelines(config, source, model, strategy, order_seed)
    with strategy.scope():
        # After the pipelines: a schedule over the run needs their batch count.
        compile_model(model, config, train_data)
    _ready_run_dir(run_dir, clock)
    clock.start()  # the set-up above is not training time
    return model, train_data, test_data, share, clock


def _cluster_settings(config, clock):
    """What every worker of a cluster must share: the settings that shape the run, and where it resumes.

    The data's own place is left out (each machine may keep it elsewhere):
    its spec and counts are compared.
    """
    shaping = {k: v for k, v in clock.settings.items() if k != "data"}
    return {
        **shaping,
        "epochs": config.epochs,
        "seed": config.seed,
        "learning_rate": config.learning_rate,
        "validation_freq": config.validation_freq,
        "steps_per_execution": config.steps_per_execution,
        "resumed_after": clock.resumed_after or 0,
    }


@contextlib.contextmanager
def _cluster_failures_named(config, run_dir):
    """A collective that failed as the cluster broke up (a worker stopped) ends the run as a `ClusterError`."""
    try:
        yield
    except Exception as error:
        cause = distribute.lost_worker(error) if config.strategy == "multi_worker" else None
        if cause is None:
            raise
        kept = completed_epochs(run_dir / BACKUP_DIR)
        raise ClusterError(
            f"a worker of the cluster stopped or cannot be reached ({cause}); {run_dir} keeps epoch {kept} of "
            f"{config.epochs}: start every worker again with the same command, and each resumes from its own backup"
        ) from None


def train(config, source=None, progress=print, on_finished=None):
    """Trains, evaluates and exports the model a `TrainConfig` describes.

    `source`, the config's data source already opened, saves reading it
    twice. A run whose folder holds the backup of the same run resumes
    after its last completed epoch, saying so through `progress`.
    `on_finished(result)` runs in the block that publishes, so that a
    Ctrl-C after publishing lets it finish too (the command line's report
    and TF Serving config).

    Returns:
        A dict with the settings, the data source and image spec, the test
        metrics, the history and the paths written (`export`, `model`,
        `run_dir`); the same dict, less the paths, is saved as `run.json`
        beside the export. A worker other than the chief returns only
        `test_metrics` and the paths, `export` being `None`.

    Raises:
        ValueError: for settings that cannot work (`DataError` for data,
            `ContractChangeError`, `SettingsChangedError`), before anything
            is written.
        FloatingPointError: if the loss became NaN or infinite; the
            checkpoints and the backup of the completed epochs are kept.
        TrainingInterrupted: on Ctrl-C, saying how many epochs were kept.
        ClusterError: under `"multi_worker"`, where another worker stopped.
    """
    config.validate()
    configure_tensorflow(config)
    strategy = distribute.distribution_strategy(config.strategy)
    source = source or open_data(config)
    run_dir = _run_dir(config, strategy)
    with _held_alone(run_dir), _cluster_failures_named(config, run_dir):
        model, train_data, test_data, share, clock = _prepare(config, source, strategy, run_dir)
        if clock.resumed_after is not None:
            progress(f"resuming {run_dir} after epoch {clock.resumed_after} of {config.epochs}")
        elif (kept := _set_aside_earlier_run(run_dir)) is not None:
            progress(f"{run_dir} held an earlier run; its files are now in {kept}")
        with data.naming_undecodable_files(source):
            _fit(model, train_data, test_data, config, run_dir, clock, distribute.is_chief(strategy), source)
            clock.stop()
            try:
                # Once the export publishes, a Ctrl-C lets the run finish:
                # rerun, it would publish the same model again. Before, it
                # is raised at the next test batch, or as the export publishes.
                with ctrl_c_kept(at_safe_points=True):
                    result = _evaluate_and_publish(config, source, model, test_data, strategy, run_dir, clock)
                    remove_backup(run_dir / BACKUP_DIR)
                    result = {**result, "data_share": share}
                    if on_finished is not None:
                        on_finished(result)
            except KeyboardInterrupt:
                raise TrainingInterrupted(run_dir, config.epochs, config.epochs) from None
    return result


@contextlib.contextmanager
def _held_alone(run_dir):
    """The run folder, locked for this process while it trains.

    A second run of the same name would otherwise resume from this one's
    live backup and publish beside it, with their files mixed. The folder
    is made here, to be locked, and removed again where the run stopped
    before writing anything into it (its checks failed).

    Raises:
        RunInUseError: where another process holds the folder.
    """
    with made_folder(run_dir), contextlib.ExitStack() as held:
        try:
            held.enter_context(locked(run_dir, wait=False))
        except BlockingIOError:
            raise RunInUseError(
                f"{run_dir} is in use: another run of the same name is training there; let it finish "
                "(or stop it), or pass another --name"
            ) from None
        yield


def _evaluate_and_publish(config, source, model, test_data, strategy, run_dir, clock):
    _, evaluation = get_model(config.model).split_options(config.options)
    metrics = evaluate_model(model, test_data, config.seed, verbose=config.verbose == 1, **evaluation)
    model_path = run_dir / MODEL_FILE
    write_atomically(model_path, model.save)
    result = {"test_metrics": metrics, "export": None, "model": str(model_path), "run_dir": str(run_dir)}
    if distribute.is_chief(strategy):
        record = _record(config, source, model, strategy, metrics, run_dir, clock)
        export_path = export.saved_model(
            model,
            config.out,
            config.run_name,
            settings=record,
            allow_contract_change=config.allow_contract_change,
        )
        text = json.dumps(record, indent=2) + "\n"
        write_atomically(run_dir / SETTINGS_FILE, lambda partial: partial.write_text(text))
        result = {**record, **result, "export": str(export_path)}
    if config.strategy == "multi_worker":
        try:
            distribute.wait_for_all_workers(strategy)
        except tf.errors.OpError as error:
            # Published already: a worker lost now costs nothing, where a
            # rerun would publish the same model again.
            if result["export"] is None or distribute.lost_worker(error) is None:
                raise
    return result
