"""`aekeras train MODEL`: train, evaluate, save and publish a SavedModel."""

import argparse
import os
from pathlib import Path

from aekeras import registry
from aekeras.cli.common import (
    UsageError,
    add_contract_argument,
    add_data_arguments,
    check_writable_folder,
    integer_at_least,
    list_published,
    non_negative_int,
    positive_float,
    positive_int,
    seed,
    sizes,
)
from aekeras.interrupts import stoppable

# What TrainConfig takes from the command line besides the model's options.
_RUN_FIELDS = (
    "model",
    "name",
    "restart",
    "allow_contract_change",
    "data",
    "data_dir",
    "image_size",
    "channels",
    "test_fraction",
    "limit",
    "epochs",
    "validation_freq",
    "batch_size",
    "learning_rate",
    "learning_rate_schedule",
    "seed",
    "out",
    "run_dir",
    "keep_checkpoints",
    "strategy",
    "steps_per_execution",
    "batch_shards",
    "intra_op_threads",
)


def _model_option_help(option, takers):
    defaults = ", ".join(f"{name} {registry.get_model(name).option(option.name).default}" for name in takers)
    return f"{', '.join(takers)}: {option.help} (default: {defaults})".replace("%", "%%")


def _add_model_options(parser):
    """One flag per option any registered model takes; left out of args unless given.

    Left out, so that an option given to a model that does not take it can
    be refused rather than ignored. An option several models take accepts
    what any of them accepts (every choice, the lowest minimum); the model
    chosen checks its own (`ModelEntry.split_options`). A flag some model
    turns on by default can be turned off (`--no-...`).
    """
    for option, takers in registry.options_by_name().values():
        kwargs = dict(default=argparse.SUPPRESS, help=_model_option_help(option, takers))
        taken = [registry.get_model(name).option(option.name) for name in takers]
        if option.type is bool:
            on = any(o.default for o in taken)
            parser.add_argument(
                option.flag, action=argparse.BooleanOptionalAction if on else "store_true", **kwargs
            )
        else:
            kinds = {int: integer_at_least(min(o.minimum for o in taken)), list: sizes}
            kind = kinds.get(option.type, option.type)
            choices = None
            if all(o.choices is not None for o in taken):
                choices = list(dict.fromkeys(choice for o in taken for choice in o.choices))
            parser.add_argument(option.flag, type=kind, choices=choices, **kwargs)


def add_parser(commands):
    from aekeras.choices import LEARNING_RATE_SCHEDULES

    parser = commands.add_parser(
        "train",
        help="train a model on any images and export it as a SavedModel",
        description="Train an autoencoder, evaluate it on the test split, save it and publish a "
        "SavedModel as the next version of OUT/MODEL/.",
    )
    parser.add_argument("model", choices=registry.model_names())
    _add_model_options(parser)
    add_data_arguments(parser)
    parser.add_argument("--limit", type=positive_int, help="train on the first N examples only")
    parser.add_argument("--epochs", type=positive_int, default=20, help="passes over the training split")
    parser.add_argument(
        "--validation-freq",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="evaluate on the test split every N epochs, for the history's val_* columns and TensorBoard's "
        "validation scalars (0: only once, after training)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=256,
        help="examples per step (under a strategy, the global batch)",
    )
    parser.add_argument("--learning-rate", type=positive_float, default=1e-3, help="Adam's learning rate")
    parser.add_argument(
        "--learning-rate-schedule",
        choices=LEARNING_RATE_SCHEDULES,
        default="constant",
        help="cosine: decay along a cosine to a tenth of --learning-rate over the run",
    )
    _add_speed_options(parser)
    parser.add_argument(
        "--seed", type=seed, default=0, help="seeds the weights, the data order and the noise"
    )
    _add_run_options(parser)
    add_contract_argument(parser)
    parser.set_defaults(check=check, run=run, tensorflow_environment=tensorflow_environment)


def _add_run_options(parser):
    """Where a run writes, how it runs, and what it does with an earlier one."""
    from aekeras.choices import KEPT_CHECKPOINTS, STRATEGIES

    parser.add_argument("--out", default="saved_models", help="SavedModels go to OUT/MODEL/VERSION/")
    parser.add_argument(
        "--run-dir",
        default="runs",
        help="checkpoints, logs and history go to RUN_DIR/MODEL/; "
        "the same command resumes an interrupted run",
    )
    parser.add_argument(
        "--keep-checkpoints",
        type=non_negative_int,
        default=KEPT_CHECKPOINTS,
        metavar="N",
        help="keep the checkpoints of the N latest epochs in RUN_DIR/MODEL/checkpoints/ (0: every epoch's; "
        "each holds the model and its optimizer's state)",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="default: one device; mirrored: every local GPU; multi_worker: the cluster in $TF_CONFIG (run the "
        "same command on every worker; the chief exports). --batch-size is the global batch",
    )
    parser.add_argument("--quiet", action="store_true", help="one line per epoch (as off a terminal), no bar")
    parser.add_argument("--name", help="names the run folder and the served model (default: the model kind)")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the backup of an interrupted run instead of resuming it",
    )


def _add_speed_options(parser):
    """The options that change how fast a run trains, not what it learns."""
    parser.add_argument(
        "--steps-per-execution",
        type=positive_int,
        default=None,
        help="training steps per graph call (default: the model's, 32; 1 under --strategy mirrored or "
        "multi_worker); the progress bar and per-batch callbacks advance once per call",
    )
    parser.add_argument(
        "--batch-shards",
        type=positive_int,
        default=None,
        help="parts each training batch is split into, trained side by side on the CPU's cores with the "
        "whole batch's update (default: the model's, one per core on a CPU where that measured faster, else 1; "
        "run.json records the count used)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=non_negative_int,
        default=None,
        help="threads each TensorFlow op may use (default: the model's, 1 where that measured faster, else 0; "
        "0: TensorFlow's choice, one per core; run.json records the count used, BENCHMARKS.md measures both)",
    )


def _config(args):
    from aekeras.training.config import TrainConfig

    options = {}
    for name, (_, takers) in registry.options_by_name().items():
        if not hasattr(args, name):
            continue
        options[name] = getattr(args, name)
        if args.model not in takers:
            raise UsageError(
                f"--{name.replace('_', '-')} does not apply to the {args.model} model (only to {', '.join(takers)})"
            )
    # A flag left out without a default of its own (--test-fraction) takes TrainConfig's.
    fields = {f: getattr(args, f) for f in _RUN_FIELDS if getattr(args, f) is not None}
    return TrainConfig(**fields, options=options, verbose=2 if args.quiet else 1)


def tensorflow_environment(args):
    """What the process's environment gains before TensorFlow loads: oneDNN's kernels where the model trains faster on them.

    `registry.onednn_environment`, for the model and the options given.
    """
    options = {name: getattr(args, name) for name in registry.options_by_name() if hasattr(args, name)}
    return registry.onednn_environment(args.model, options, os.environ)


def check(args):
    """Refuses, before TensorFlow loads, what `run` could not train: the model's options, the run's settings, folders and data."""
    from aekeras import data

    config = _config(args)
    check_writable_folder(args.out, "--out")
    check_writable_folder(args.run_dir, "--run-dir")
    try:
        config.validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    # The run's own folders too: a read-only one, or a file in its place, failed after training.
    check_writable_folder(Path(args.out) / config.run_name, "--out")
    check_writable_folder(Path(args.run_dir) / config.run_name, "--run-dir")
    data.check_source(config.data, config.data_dir)


def run(args):
    from aekeras import export
    from aekeras.training import distribution_strategy, train
    from aekeras.training.advice import learning_rate_note
    from aekeras.training.runner import configure_tensorflow, open_data

    config = _config(args)  # checked (`check`)
    try:
        # Before training: a models.config it cannot update would stop it after publishing.
        export.check_models_config(args.out)
        # Before anything else runs: TensorFlow fixes its threads and its
        # graph optimizer's settings when it starts, and multi_worker must
        # configure its collectives first.
        configure_tensorflow(config)
        if config.strategy == "multi_worker":
            # It waits here, in TensorFlow's C++ code, until every worker has started.
            print(
                "multi_worker: waiting for every worker of $TF_CONFIG's cluster to start (Ctrl-C stops this "
                "one; nothing is written before they meet)",
                flush=True,
            )
            stoppable(lambda: distribution_strategy(config.strategy))
        else:
            distribution_strategy(config.strategy)
        source = open_data(config)
        # Model arguments out of range fail here, before any data is read;
        # the model is not kept, for training builds its own.
        note = learning_rate_note(
            registry.build_model(config.model, source.spec, **config.options), config.learning_rate
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if note:
        print(note, flush=True)
    reported = []

    def on_finished(result):
        reported.append(_report(result, args.out))
        args.finished = reported[0] is None  # nothing left to stop (`cli._run`)

    try:
        # Reported in the block that publishes: a Ctrl-C after the rename
        # lets the records and the serving config be written.
        train(config, source=source, on_finished=on_finished)
    except KeyboardInterrupt:
        if not reported:
            raise
        # Taken as the command returned (Python runs handlers when it next
        # calls a function): published and reported, nothing is left to stop.
    if reported and reported[0] is not None:
        raise reported[0]


def _report(result, out):
    """Writes the serving config of `out`, then prints the run's figures and files.

    The config first: a print that fails (the reader of a pipe gone, a
    full disk) would otherwise leave the published version unserved.

    Returns:
        None, or the error to end the command with: a config edited since
        the command's check, which it could not update (`list_published`).
    """
    config, unlisted = list_published(result["export"], out) if result["export"] is not None else (None, None)
    share = result["data_share"]
    if share is not None:
        print(
            f"data: this worker read {share['images']} of the {share['of']} training images "
            f"(share {share['worker'] + 1} of {share['workers']}, by file)"
        )
    for name, value in result["test_metrics"].items():
        print(f"test {name}: {value:.6f}")
    print(f"model: {result['model']}")
    if result["export"] is not None:
        print(f"SavedModel: {result['export']}")
        if config is not None:
            print(f"TF Serving config: {config}")
    return unlisted
