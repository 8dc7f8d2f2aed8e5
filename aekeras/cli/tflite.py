"""`aekeras tflite VERSION_DIR`: convert an export to TFLite and check it in LiteRT."""

from pathlib import Path

from aekeras.choices import CALIBRATED, QUANTIZATIONS
from aekeras.cli.common import (
    add_data_arguments,
    check_export_and_data,
    export_test_images,
    native_logs_hidden,
    positive_int,
    print_flipped_picks,
    print_reconstruction_mse,
)
from aekeras.errors import CheckInterrupted
from aekeras.interrupts import ctrl_c_kept


def add_parser(commands):
    parser = commands.add_parser(
        "tflite",
        help="convert an exported SavedModel to TFLite and check it in LiteRT",
        description="Convert every signature of an export into one .tflite file written beside it, then "
        "report its size and its test reconstruction MSE in the LiteRT interpreter next to the "
        "SavedModel's, and the largest difference from the SavedModel's outputs per signature. int8 and "
        "int16x8 are calibrated on the run's own training images and the error measured on its own test "
        "images (the data its run.json names, or --data).",
    )
    parser.add_argument("version_dir", help="an export, e.g. saved_models/dense/1")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default="none",
        help='none: float32; README, "TFLite (LiteRT)", has each',
    )
    parser.add_argument(
        "--calibration-images",
        type=positive_int,
        default=500,
        help="int8, int16x8: how many training images calibrate the ranges (all, if fewer)",
    )
    parser.add_argument(
        "--strip-names",
        action="store_true",
        help="drop the names of the tensors no signature reads or writes (labels for debugging): "
        "a smaller file, the same model",
    )
    add_data_arguments(
        parser, data_default=None, what="the data to calibrate and test on (default: the run's)"
    )
    parser.set_defaults(check=check_export_and_data, run=run)


def run(args):
    from aekeras import quantization, serving, signatures, tflite

    version_dir = Path(args.version_dir)  # checked (`check_export_and_data`)
    server = serving.LocalServer(version_dir)
    source, options, test_images, test_labels = export_test_images(args, version_dir, server.contract)
    images = labels = None
    if args.quantize in CALIBRATED:
        with_labels = test_labels is not None
        chosen = tflite.calibration_images(
            source, args.calibration_images, with_labels=with_labels, **options
        )
        images, labels = chosen if with_labels else (chosen, None)
        print(f"calibrating on {len(images)} training images of {source}")
        if len(images) < tflite.FEW_CALIBRATION_IMAGES:
            print(
                f"note: {len(images)} images may not span the activations other images reach, which "
                f"{args.quantize} then clips; {tflite.FEW_CALIBRATION_IMAGES} or more are usual"
            )
    with native_logs_hidden(args.verbose):
        path = tflite.convert(
            version_dir, args.quantize, images=images, labels=labels, strip_names=args.strip_names
        )
        try:
            with ctrl_c_kept(at_safe_points=True):  # each batch checked (`tracked`)
                runner = tflite.Runner(path)
                quantized_tensors = runner.quantized_tensors()
                # The export the server already loaded; the MSEs from the same calls.
                differences = signatures.max_differences(
                    server.model, runner, test_images, "LiteRT", verbose=True, labels=test_labels
                )
        except KeyboardInterrupt:
            raise CheckInterrupted([path]) from None
    print(f"TFLite ({args.quantize}): {path} ({path.stat().st_size} bytes)")
    print_reconstruction_mse(differences, "LiteRT", len(test_images), source)
    print(
        "largest difference from the SavedModel: "
        + ", ".join(
            f"{name} {output} {difference:.1e}"
            for name, outputs in sorted(differences.items())
            for output, difference in sorted(outputs.items())
        )
    )
    print_flipped_picks(differences, "LiteRT", len(test_images))
    if args.quantize == "dynamic" and not quantized_tensors:
        print(
            "note: no weights were quantized: dynamic range quantization leaves kernels of fewer than "
            "1,024 values in float32, and this model has no larger one; the file is the float one"
        )
    if args.quantize == "int16x8" and not quantization.on_int8_grid(server.model):
        print(
            "note: this export's kernels are not on the int8 grid, so int16x8 rounds them (most of the "
            "difference above); `aekeras export RUN --int8-weights` publishes a copy that converts "
            "without rounding them"
        )
