"""`aekeras tflite VERSION_DIR`: convert an export to TFLite and check it in LiteRT."""

from pathlib import Path

from aekeras.choices import QUANTIZATIONS
from aekeras.cli.common import (
    UsageError,
    add_data_arguments,
    check_writable_folder,
    native_logs_hidden,
    positive_int,
    read_options,
)


def add_parser(commands):
    parser = commands.add_parser(
        "tflite",
        help="convert an exported SavedModel to TFLite and check it in LiteRT",
        description="Convert every signature of an export into one .tflite file written beside it, then "
        "report its size and its test reconstruction MSE in the LiteRT interpreter next to the "
        "SavedModel's. int8 is calibrated on the run's own training images and the error measured on its "
        "own test images (the data its run.json names, or --data).",
    )
    parser.add_argument("version_dir", help="an export, e.g. saved_models/dense/1")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default="none")
    parser.add_argument(
        "--calibration-images",
        type=positive_int,
        default=500,
        help="int8: how many training images calibrate the ranges (all, if fewer)",
    )
    add_data_arguments(
        parser, data_default=None, what="the data to calibrate and test on (default: the run's)"
    )
    parser.set_defaults(run=run)


def _data(args, version_dir, image_shape):
    """`(source, read options)`: `--data`, else what the export's run.json names."""
    from aekeras.training.records import data_options, read_record

    if args.data is not None:
        options = read_options(args)
        # The export's size and channels, unless asked otherwise.
        options.setdefault("image_size", image_shape[:2])
        options.setdefault("channels", image_shape[2])
        return args.data, options
    record = read_record(version_dir)
    if record is None or "data" not in record:
        raise UsageError(f"{version_dir}: no run.json says what data the model was trained on; pass --data")
    return data_options(record)


def run(args):
    from aekeras import data, serving, tflite

    version_dir = Path(args.version_dir)
    if not (version_dir / "saved_model.pb").is_file():
        raise UsageError(
            f"{version_dir}: no saved_model.pb (expected an export's version folder, "
            "e.g. saved_models/dense/1)"
        )
    check_writable_folder(version_dir, "version_dir")
    server = serving.LocalServer(version_dir)
    image_shape = next(i for i in server.contract.signature("encode").inputs if i.name == "images").shape[1:]
    source, options = _data(args, version_dir, image_shape)
    test_images = data.load_arrays(source, "test", **options)[0]
    if test_images.shape[1:] != tuple(image_shape):
        raise UsageError(
            f"{source}: images of shape {test_images.shape[1:]}, but the export takes {tuple(image_shape)}"
        )
    images = None
    if args.quantize == "int8":
        images = tflite.calibration_images(source, args.calibration_images, **options)
        print(f"calibrating on {len(images)} training images of {source}")
    with native_logs_hidden(args.verbose):
        path = tflite.convert(version_dir, args.quantize, images=images)
        litert_mse = tflite.Runner(path).reconstruction_mse(test_images)
    saved_model_mse = serving.reconstruction_mse(server, test_images)
    print(f"TFLite ({args.quantize}): {path} ({path.stat().st_size} bytes)")
    print(
        f"test reconstruction MSE on {len(test_images)} images of {source}: LiteRT {litert_mse:.6f}, "
        f"SavedModel {saved_model_mse:.6f}"
    )
