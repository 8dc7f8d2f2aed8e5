"""`aekeras export SOURCE --name NAME`: publish a `.keras` model as a SavedModel."""

import json
from pathlib import Path

from aekeras.cli.common import UsageError, add_contract_argument, check_writable_folder, list_published
from aekeras.interrupts import ctrl_c_kept
from aekeras.names import check_name


def add_parser(commands):
    parser = commands.add_parser(
        "export",
        help="export a trained model as a SavedModel for TF Serving",
        description="Publish a .keras model (or a run folder's model.keras) as the next version of OUT/NAME/.",
    )
    parser.add_argument("source", help="a .keras file or a run folder")
    parser.add_argument("--name", required=True, help="model name under OUT")
    parser.add_argument("--out", default="saved_models", help="where the model folders are")
    parser.add_argument(
        "--serving-root",
        help="where the server sees OUT, for models.config (e.g. /models in the tensorflow/serving container; "
        "default: the root models.config already places its models under, else OUT's absolute path)",
    )
    parser.add_argument(
        "--int8-weights",
        action="store_true",
        help="put every kernel on LiteRT's int8 grid (one scale per output channel), so that "
        "`aekeras tflite --quantize int16x8` of the export loses nothing to weight rounding",
    )
    add_contract_argument(parser)
    parser.set_defaults(check=check, run=run)


def _model_path(args):
    """The `.keras` file `args.source` names: itself, or a run folder's model.keras."""
    source = Path(args.source)
    return source / "model.keras" if source.is_dir() else source


def check(args):
    """Refuses, before TensorFlow loads, what `run` could not publish: the model file, the name, the folders."""
    model_path = _model_path(args)
    if not model_path.is_file() or model_path.suffix != ".keras":
        raise UsageError(f"{args.source}: expected a .keras file or a run folder holding model.keras")
    try:
        check_name(args.name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    check_writable_folder(args.out, "--out")
    check_writable_folder(Path(args.out) / args.name, "--out")  # a read-only one failed after the tracing


def run(args):
    from aekeras import export
    from aekeras.models import load_model

    model_path = _model_path(args)  # checked (`check`)
    export.check_models_config(args.out)  # one it could not update stops it before it publishes
    # A run folder's record of settings and metrics travels with the export.
    record_path = model_path.parent / export.SETTINGS_FILE
    settings = json.loads(record_path.read_text()) if record_path.is_file() else None
    # A Ctrl-C while TensorFlow traces the signatures stays a Ctrl-C, raised
    # before anything is published.
    with ctrl_c_kept(at_safe_points=True):
        model = load_model(model_path)
        try:
            path = export.saved_model(
                model,
                args.out,
                args.name,
                settings=settings,
                allow_contract_change=args.allow_contract_change,
                int8_weights=args.int8_weights,
            )
        except ValueError as e:  # a name TF Serving cannot watch, a changed contract: nothing is written
            raise UsageError(str(e)) from None
        # Published: a Ctrl-C from here on lets the serving config be written,
        # and it is, before any line that an output gone away could stop.
        config, unlisted = list_published(path, args.out, args.serving_root)
        print(f"SavedModel: {path}{' (kernels on the int8 grid)' if args.int8_weights else ''}")
        if unlisted is not None:
            raise unlisted
        print(f"TF Serving config: {config}")
        args.finished = True  # nothing left to stop (`cli._run`)
