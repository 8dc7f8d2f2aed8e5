"""The `aekeras` command: `aekeras train ...`, `aekeras export ...`.

Arguments are checked before any data is read or any training starts; a bad
one ends the command with exit status 2 and one line on stderr.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import keras

from aekeras import export, serving, tflite
from aekeras.data import DATA_DIR_ENV, DATASETS, DataError, idx_paths, load_arrays
from aekeras.noise import NOISE_KINDS
from aekeras.training import ARCHITECTURES, MODEL_NAMES, TrainConfig, build_model, train

EXIT_USAGE = 2


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
    train.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        default=defaults.architecture,
        help="encoder/decoder of the denoising, contractive and vae models",
    )
    train.add_argument(
        "--tied-weights", action="store_true", help="decoder = encoder transposed (dense)"
    )
    train.add_argument("--noise", choices=NOISE_KINDS, default=defaults.noise)
    train.add_argument(
        "--noise-level",
        type=float,
        default=defaults.noise_level,
        help="drop probability, Gaussian stddev or salt-and-pepper fraction",
    )
    train.add_argument(
        "--contraction-weight", type=float, default=defaults.contraction_weight
    )
    train.add_argument("--beta", type=float, default=defaults.beta, help="VAE KL weight")
    train.add_argument(
        "--binarize", action="store_true", help="VAE: dynamically binarised inputs"
    )
    train.add_argument(
        "--nll-samples",
        type=int,
        default=defaults.nll_samples,
        help="VAE: importance samples for the test NLL (0 skips it)",
    )
    train.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    train.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
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
    return parser


def _train(args):
    if args.data_dir is not None:
        _check_data_dir(args.data_dir)
    elif os.environ.get(DATA_DIR_ENV) and not Path(os.environ[DATA_DIR_ENV]).is_dir():
        raise UsageError(f"${DATA_DIR_ENV}={os.environ[DATA_DIR_ENV]}: data folder does not exist")
    check_writable_folder(args.out, "--out")
    check_writable_folder(args.run_dir, "--run-dir")
    config = TrainConfig(
        model=args.model,
        latent_dim=args.latent_dim,
        architecture=args.architecture,
        tied_weights=args.tied_weights,
        noise=args.noise,
        noise_level=args.noise_level,
        contraction_weight=args.contraction_weight,
        beta=args.beta,
        binarize=args.binarize,
        nll_samples=args.nll_samples,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        dataset=args.dataset,
        data_dir=args.data_dir,
        limit=args.limit,
        seed=args.seed,
        out=args.out,
        run_dir=args.run_dir,
        verbose=2 if args.quiet else 1,
    )
    try:
        config.validate()
        build_model(config)  # model arguments out of range fail here, before any data
    except ValueError as e:
        raise UsageError(str(e)) from None
    result = train(config)
    for name, value in result["test_metrics"].items():
        print(f"test {name}: {value:.6f}")
    print(f"model: {result['model']}")
    print(f"SavedModel: {result['export']}")
    print(f"TF Serving config: {export.write_models_config(args.out)}")


def _export(args):
    source = Path(args.source)
    model_path = source / "model.keras" if source.is_dir() else source
    if not model_path.is_file() or model_path.suffix != ".keras":
        raise UsageError(f"{args.source}: expected a .keras file or a run folder holding model.keras")
    check_writable_folder(args.out, "--out")

    model = keras.models.load_model(model_path)
    # A run folder's record of settings and metrics travels with the export.
    record_path = model_path.parent / export.SETTINGS_FILE
    settings = json.loads(record_path.read_text()) if record_path.is_file() else None
    path = export.saved_model(model, args.out, args.name, settings=settings)
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


def main(argv=None):
    """Runs the command; returns its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        {"train": _train, "export": _export, "tflite": _tflite}[args.command](args)
    except (UsageError, DataError) as e:
        print(f"aekeras: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as e:
        print(f"aekeras: error: {e}", file=sys.stderr)
        return 1
    return 0
