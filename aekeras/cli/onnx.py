"""`aekeras onnx VERSION_DIR`: convert an export to ONNX and check it in onnxruntime."""

from pathlib import Path

from aekeras.cli.common import (
    UsageError,
    add_data_arguments,
    check_export_and_data,
    export_test_images,
    native_logs_hidden,
    print_flipped_picks,
    print_reconstruction_mse,
)
from aekeras.errors import CheckInterrupted
from aekeras.interrupts import ctrl_c_kept


def add_parser(commands):
    parser = commands.add_parser(
        "onnx",
        help="convert an exported SavedModel to ONNX and check it in onnxruntime",
        description="Convert every signature of an export into an ONNX file (VERSION_DIR/onnx/SIGNATURE.onnx, "
        "with the SavedModel's input and output names), then run each in onnxruntime on the run's own "
        "test images (the data its run.json names, or --data) and report the largest difference from the "
        "SavedModel, and the test reconstruction MSE next to the SavedModel's.",
    )
    parser.add_argument("version_dir", help="an export, e.g. saved_models/dense/1")
    add_data_arguments(parser, data_default=None, what="the data to test on (default: the run's)")
    parser.set_defaults(check=check_export_and_data, run=run)


def run(args):
    from aekeras import onnx, serving, signatures

    version_dir = Path(args.version_dir)  # checked (`check_export_and_data`)
    server = serving.LocalServer(version_dir)
    try:
        onnx.check_names(server.model)
    except ValueError as e:
        raise UsageError(f"{version_dir}: {e}") from None
    source, _, test_images, test_labels = export_test_images(args, version_dir, server.contract)
    with native_logs_hidden(args.verbose):
        paths = onnx.convert(version_dir)
        try:
            with ctrl_c_kept(at_safe_points=True):  # each batch checked (`tracked`)
                runner = onnx.Runner(onnx.onnx_dir(version_dir))
                differences = signatures.max_differences(
                    server.model, runner, test_images, "ONNX", verbose=True, labels=test_labels
                )
        except KeyboardInterrupt:
            raise CheckInterrupted(paths.values()) from None
    for name, path in paths.items():
        checked = (
            f"max |ONNX - SavedModel| {max(differences[name].values()):.2e} on {len(test_images)} test images "
            f"of {source}"
            if name in differences
            else "draws random numbers: not compared value by value"
        )
        print(f"ONNX {name}: {path} ({path.stat().st_size} bytes); {checked}")
    print_reconstruction_mse(differences, "ONNX", len(test_images), source)
    print_flipped_picks(differences, "ONNX", len(test_images))
