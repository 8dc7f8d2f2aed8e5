"""The `aekeras` command: `aekeras train ...`, `aekeras export ...`.

Arguments are checked before any data is read or any training starts; a bad
one ends the command with exit status 2 and one line on stderr.
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import keras

from aekeras import export, serving, tflite
from aekeras.data import DATA_DIR_ENV, DATASETS, DataError, idx_paths, load_arrays
from aekeras.models import BaseAutoencoder
from aekeras.noise import NOISE_KINDS
from aekeras.training import (
    ARCHITECTURES,
    MODEL_NAMES,
    STRATEGIES,
    TrainConfig,
    build_model,
    distribution_strategy,
    train,
)

EXIT_USAGE = 2

# The train options that only some models take: giving one to another model
# is a mistake, not something to ignore.
MODEL_OPTIONS = {
    "architecture": ("denoising", "contractive", "vae"),
    "tied_weights": ("dense", "denoising", "contractive"),
    "noise": ("denoising",),
    "noise_level": ("denoising",),
    "contraction_weight": ("contractive",),
    "beta": ("vae",),
    "binarize": ("vae",),
    "nll_samples": ("vae",),
}


class UsageError(Exception):
    """A command-line argument that cannot work; exit status 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage before its error; one line is clearer.
    def error(self, message):
        raise UsageError(message)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def check_writable_folder(path, option):
    """Raises UsageError unless `path` is, or can be made, a writable folder.

    Nothing is created: the nearest existing ancestor is probed with a
    temporary file that is removed at once.
    """
    path = Path(path).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UsageError(f"{option} {path}: {existing} is not writable ({e.strerror})") from None


def _check_data_dir(folder):
    try:
        for split in ("train", "test"):
            idx_paths(folder, split)
    except DataError as e:
        raise UsageError(str(e)) from None


def build_parser():
    defaults = TrainConfig()
    parser = _Parser(prog="aekeras", description="Autoencoders for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train a model on MNIST and export it as a SavedModel",
        description="Train an autoencoder, evaluate it on the test split, save "
        "it and publish a SavedModel as the next version of OUT/MODEL/.",
    )
    train.add_argument("model", choices=MODEL_NAMES)
    train.add_argument(
        "--latent-dim",
        type=_positive_int,
        help="code size (default: dense and contractive 30, denoising 500, vae 20, "
        "conv a spatial 4x4x8 code)",
    )
    # Model-specific options are left out of args unless given, so that
    # giving one to a model that does not take it can be refused.
    model_option = dict(default=argparse.SUPPRESS)
    train.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        help=f"denoising, contractive, vae: encoder/decoder (default: {defaults.architecture})",
        **model_option,
    )
    train.add_argument(
        "--tied-weights",
        action="store_true",
        help="dense, denoising, contractive: decoder = encoder transposed",
        **model_option,
    )
    train.add_argument(
        "--noise", choices=NOISE_KINDS, help=f"denoising (default: {defaults.noise})", **model_option
    )
    train.add_argument(
        "--noise-level",
        type=float,
        help="denoising: drop probability, Gaussian stddev or salt-and-pepper "
        f"fraction (default: {defaults.noise_level})",
        **model_option,
    )
    train.add_argument(
        "--contraction-weight",
        type=float,
        help=f"contractive: lambda (default: {defaults.contraction_weight})",
        **model_option,
    )
    train.add_argument(
        "--beta", type=float, help=f"vae: KL weight (default: {defaults.beta})", **model_option
    )
    train.add_argument(
        "--binarize",
        action="store_true",
        help="vae: dynamically binarised inputs",
        **model_option,
    )
    train.add_argument(
        "--nll-samples",
        type=int,
        help="vae: importance samples for the test NLL, 0 skips it "
        f"(default: {defaults.nll_samples})",
        **model_option,
    )
    train.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    train.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    train.add_argument(
        "--steps-per-execution",
        type=_positive_int,
        default=defaults.steps_per_execution,
        help="training steps per graph call: faster for small models, coarser callbacks",
    )
    train.add_argument(
        "--learning-rate", type=_positive_float, default=defaults.learning_rate
    )
    train.add_argument("--dataset", choices=DATASETS, default=defaults.dataset)
    train.add_argument(
        "--data-dir",
        help=f"folder of the four IDX files (default: ${DATA_DIR_ENV}, then TFDS)",
    )
    train.add_argument(
        "--limit", type=_positive_int, help="train on the first N examples only"
    )
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument(
        "--out", default=defaults.out, help="SavedModels go to OUT/MODEL/VERSION/"
    )
    train.add_argument(
        "--run-dir",
        default=defaults.run_dir,
        help="checkpoints, logs and history go to RUN_DIR/MODEL/; "
        "the same command resumes an interrupted run",
    )
    train.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default=defaults.strategy,
        help="default: one device; mirrored: every local GPU; multi_worker: the "
        "cluster in $TF_CONFIG (run the same command on every worker; the chief "
        "exports). --batch-size is the global batch",
    )
    train.add_argument(
        "--quiet", action="store_true", help="no progress bar, one line per epoch"
    )

    export = commands.add_parser(
        "export",
        help="export a trained model as a SavedModel for TF Serving",
        description="Publish a .keras model (or a run folder's model.keras) as "
        "the next version of OUT/NAME/.",
    )
    export.add_argument("source", help="a .keras file or a run folder")
    export.add_argument("--name", required=True, help="model name under OUT")
    export.add_argument("--out", default=defaults.out)
    export.add_argument(
        "--serving-root",
        help="where the server sees OUT, for models.config (e.g. /models in the "
        "tensorflow/serving container; default: OUT's absolute path)",
    )

    convert = commands.add_parser(
        "tflite",
        help="convert an exported SavedModel to TFLite and check it in LiteRT",
        description="Convert every signature of an export into one .tflite file "
        "written beside it, then report its size and its test reconstruction "
        "MSE in the LiteRT interpreter next to the SavedModel's.",
    )
    convert.add_argument("version_dir", help="an export, e.g. saved_models/dense/1")
    convert.add_argument("--quantize", choices=tflite.QUANTIZATIONS, default="none")
    convert.add_argument(
        "--calibration-images",
        type=_positive_int,
        default=500,
        help="int8: how many real MNIST training images calibrate the ranges",
    )
    convert.add_argument(
        "--data-dir", help=f"folder of the MNIST IDX files (default: ${DATA_DIR_ENV}, then TFDS)"
    )

    report = commands.add_parser(
        "report",
        help="measure the lecture's applications and write figures and REPORT.md",
        description="Train what the report needs (cached in OUT/cache/), then write "
        "every figure, REPORT.md and metrics.json to OUT.",
    )
    report.add_argument("--out", default="reports", help="where the report goes")
    report.add_argument("--quick", action="store_true", help="tiny settings: every figure in about a minute")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument(
        "--data-dir", help=f"folder of the MNIST IDX files (default: ${DATA_DIR_ENV}, then TFDS)"
    )
    return parser


def _check_model_options(args):
    for option, models in MODEL_OPTIONS.items():
        if hasattr(args, option) and args.model not in models:
            raise UsageError(
                f"--{option.replace('_', '-')} does not apply to the {args.model} "
                f"model (only to {', '.join(models)})"
            )
    if getattr(args, "tied_weights", False) and getattr(args, "architecture", "dense") == "conv":
        raise UsageError("--tied-weights conflicts with --architecture conv (it ties dense layers)")


def _train(args):
    _check_model_options(args)
    if args.data_dir is not None:
        _check_data_dir(args.data_dir)
    elif os.environ.get(DATA_DIR_ENV) and not Path(os.environ[DATA_DIR_ENV]).is_dir():
        raise UsageError(f"${DATA_DIR_ENV}={os.environ[DATA_DIR_ENV]}: data folder does not exist")
    check_writable_folder(args.out, "--out")
    check_writable_folder(args.run_dir, "--run-dir")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(
        **{k: v for k, v in vars(args).items() if k in fields},
        verbose=2 if args.quiet else 1,
    )
    try:
        config.validate()
        # Before anything else runs: multi_worker must configure TensorFlow's
        # collectives first, and a bad TF_CONFIG is a usage error.
        distribution_strategy(config.strategy)
        build_model(config)  # model arguments out of range fail here, before any data
    except ValueError as e:
        raise UsageError(str(e)) from None
    result = train(config)
    for name, value in result["test_metrics"].items():
        print(f"test {name}: {value:.6f}")
    print(f"model: {result['model']}")
    if result["export"] is not None:
        print(f"SavedModel: {result['export']}")
        print(f"TF Serving config: {export.write_models_config(args.out)}")


def load_model(path):
    """Loads an aekeras model from a `.keras` file in Keras's safe mode.

    Raises:
        UsageError: in one line, if the file is not a `.keras` archive, asks
            for Python code (a lambda) or for a class or function that is
            not registered, or holds something other than an aekeras
            autoencoder.
    """
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path}: not a .keras file (expected the zip archive model.save writes)")
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError) as e:
        # Keras wraps the refusal once per enclosing layer; the innermost
        # error names what was refused.
        root = e
        while root.__cause__ or root.__context__:
            root = root.__cause__ or root.__context__
        reason = str(root).strip().strip("\"'").split(". ")[0].splitlines()[0]
        raise UsageError(f"{path}: cannot load it in Keras safe mode: {reason}") from None
    if not isinstance(model, BaseAutoencoder):
        raise UsageError(f"{path}: holds a {type(model).__name__}, not an aekeras autoencoder")
    return model


def _export(args):
    source = Path(args.source)
    model_path = source / "model.keras" if source.is_dir() else source
    if not model_path.is_file() or model_path.suffix != ".keras":
        raise UsageError(f"{args.source}: expected a .keras file or a run folder holding model.keras")
    check_writable_folder(args.out, "--out")

    model = load_model(model_path)
    # A run folder's record of settings and metrics travels with the export.
    record_path = model_path.parent / export.SETTINGS_FILE
    settings = json.loads(record_path.read_text()) if record_path.is_file() else None
    try:
        path = export.saved_model(model, args.out, args.name, settings=settings)
    except ValueError as e:  # a name TF Serving cannot watch; nothing is written
        raise UsageError(str(e)) from None
    print(f"SavedModel: {path}")
    print(f"TF Serving config: {export.write_models_config(args.out, args.serving_root)}")


def _tflite(args):
    version_dir = Path(args.version_dir)
    if not (version_dir / "saved_model.pb").is_file():
        raise UsageError(
            f"{version_dir}: no saved_model.pb (expected an export's version folder, "
            "e.g. saved_models/dense/1)"
        )
    if args.data_dir is not None:
        _check_data_dir(args.data_dir)
    check_writable_folder(version_dir, "version_dir")
    images = None
    if args.quantize == "int8":
        images = tflite.calibration_images(args.calibration_images, data_dir=args.data_dir)
    path = tflite.convert(version_dir, args.quantize, images=images)
    test_images = load_arrays("mnist", "test", data_dir=args.data_dir)[0].astype("float32") / 255
    server = serving.LocalServer(version_dir)
    saved_model_mse = float(
        sum(
            server.predict(images=test_images[i : i + 1000])["score"].sum()
            for i in range(0, len(test_images), 1000)
        )
        / len(test_images)
    )
    litert_mse = tflite.Runner(path).reconstruction_mse(test_images)
    print(f"TFLite ({args.quantize}): {path} ({path.stat().st_size} bytes)")
    print(f"test reconstruction MSE: LiteRT {litert_mse:.6f}, SavedModel {saved_model_mse:.6f}")


def _report(args):
    # Imported here: OpenCV, scikit-learn and matplotlib only serve the report.
    from aekeras.report import ReportSettings, build_report

    if args.data_dir is not None:
        _check_data_dir(args.data_dir)
    check_writable_folder(args.out, "--out")
    settings = ReportSettings.quick() if args.quick else ReportSettings()
    settings.seed = args.seed
    build_report(args.out, settings, data_dir=args.data_dir)


def main(argv=None):
    """Runs the command; returns its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        commands = {"train": _train, "export": _export, "tflite": _tflite, "report": _report}
        commands[args.command](args)
    except (UsageError, DataError) as e:
        print(f"aekeras: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as e:
        print(f"aekeras: error: {e}", file=sys.stderr)
        return 1
    return 0
