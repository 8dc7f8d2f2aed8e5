"""Distribution: strategies by name, and how data is split among the workers of `TF_CONFIG`'s cluster."""

import hashlib
import json
import re

import tensorflow as tf

from aekeras.choices import STRATEGIES
from aekeras.errors import SettingsChangedError, without_function_names
from aekeras.training.cluster import TF_CONFIG_ENV, check_tf_config

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
            address = check_tf_config()
            try:
                _strategies[name] = tf.distribute.MultiWorkerMirroredStrategy()
            except tf.errors.UnknownError as e:
                if "Could not start gRPC server" not in str(e):
                    raise
                raise ValueError(
                    f"this worker's address in ${TF_CONFIG_ENV}, {address}, is taken by another "
                    "process (is this worker already running?); stop that one, or give this worker a free port"
                ) from None
        else:
            _strategies[name] = tf.distribute.MirroredStrategy()
    return _strategies[name]


def is_chief(strategy):
    return strategy.extended.should_checkpoint


def worker_name(strategy):
    """`worker-1` and the like: where a worker other than the chief keeps its files."""
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type}-{resolver.task_id}"


def by_worker(strategy, make_dataset, global_batch_size):
    """A distributed dataset in which each worker reads only its own share.

    `make_dataset(shard, batch_size)` builds one worker's pipeline from its
    `(index, count)` share of the examples; every share is equally large,
    so every worker runs the same number of steps.

    Returns:
        `(dataset, shards)`: the distributed dataset and the `(index,
        count)` shares this process reads.
    """
    shards = []

    def worker_dataset(context):
        shard = (context.input_pipeline_id, context.num_input_pipelines)
        shards.append(shard)
        dataset = make_dataset(shard, context.get_per_replica_batch_size(global_batch_size))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options)

    return strategy.distribute_datasets_from_function(worker_dataset), shards


def vector_logs(step):
    """Wraps a train or test step so that it returns 1-element vectors.

    Keras 3 reduces the logs of each multi-worker step with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars
    (tensorflow/tensorflow#72388); the mean over workers of 1-element
    vectors is the scalar Keras expects.
    """

    def step_with_vector_logs(data):
        return {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    return step_with_vector_logs


def wait_for_all_workers(strategy):
    """Returns once every worker got here (a one-number all-reduce).

    A worker that exits while the chief is still exporting stops sending
    heartbeats, which the chief's cluster logs as a crash.
    """
    strategy.reduce("SUM", strategy.run(tf.function(lambda: tf.constant(0.0))), axis=None)


def check_same_run(strategy, settings):
    """Raises SettingsChangedError unless every worker of the cluster runs with the same `settings` (JSON-able).

    Workers started with other settings (epochs, batch size, limit, model
    options), or resuming after other epochs, trained until their
    collectives no longer matched and then failed in TensorFlow's words, or
    trained on silently with another split of each batch.
    """
    text = json.dumps(settings, sort_keys=True, default=str)
    # 24 bits of the digest: exact in float32, whichever dtypes the collectives take.
    mine = float(int.from_bytes(hashlib.sha256(text.encode()).digest()[:3], "big"))
    everyone = strategy.gather(strategy.run(tf.function(lambda: tf.constant([mine]))), axis=0)
    if any(value != mine for value in everyone.numpy().tolist()):
        resumed = settings.get("resumed_after")
        this = f"resumes after epoch {resumed}" if resumed else "starts afresh"
        raise SettingsChangedError(
            f"the workers of this cluster were started with other settings, or resume after other epochs, "
            f"than this one's (this one {this}); run the same command on every worker (each resumes from its "
            "own backup), with --restart on every one to start afresh"
        )


def lost_worker(error):
    """The one-line cause of a collective that failed because the cluster broke up, or None for other errors.

    A worker that stops (a crash, Ctrl-C, `kill`) aborts every collective
    of the others; TensorFlow reports it deep in a long error.
    """
    if not isinstance(error, tf.errors.OpError):
        return None
    text = str(error)
    found = re.search(r"Collective ops is aborted by: ([^\n]*)", text)
    if found is None and not isinstance(error, tf.errors.UnavailableError):
        return None
    lines = text[found.start(1) :].splitlines() if found is not None else []
    if not lines or not lines[0].strip():
        cause = text.strip().splitlines()[0]
    else:  # "... unhealthy (stopped sending heartbeats):" names the tasks on the next line
        cause = " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return without_function_names(cause).strip()
