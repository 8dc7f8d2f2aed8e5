"""`aekeras report`: the lectures' applications, measured, with figures and REPORT.md."""

import dataclasses
from pathlib import Path

from aekeras.cli.common import (
    add_read_arguments,
    check_writable_folder,
    data_source_help,
    positive_int,
    read_options,
    seed,
)
from aekeras.interrupts import ctrl_c_kept


def add_parser(commands):
    parser = commands.add_parser(
        "report",
        help="measure the lecture's applications and write figures and REPORT.md",
        description="Train what the report needs (cached in OUT/cache/), then write every figure, REPORT.md "
        "and metrics.json to OUT.",
    )
    parser.add_argument("--out", default="reports", help="where the report goes")
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings: every figure in about 1.5 minutes"
    )
    parser.add_argument("--seed", type=seed, default=0, help="seeds every model, mask and sample")
    parser.add_argument(
        "--limit", type=positive_int, help="use the first N training images only (default: all, or --quick's)"
    )
    parser.add_argument(
        "--test-limit",
        type=positive_int,
        help="measure the first N test images only (default: all, or --quick's)",
    )
    parser.add_argument(
        "--source",
        default="mnist",
        help=data_source_help("the images the report measures, as `aekeras train --data`"),
    )
    add_read_arguments(parser)
    parser.set_defaults(check=check, run=run)


def check(args):
    """Refuses, before TensorFlow loads, a report folder it could not write, or a source that is not there."""
    from aekeras import data

    check_writable_folder(args.out, "--out")
    check_writable_folder(Path(args.out) / "cache", "--out")  # where the models are kept
    data.check_source(args.source, args.data_dir)


def run(args):
    # Imported here: OpenCV, scikit-learn and matplotlib only serve the report.
    from aekeras.report import ReportSettings, build_report

    given = {"seed": args.seed, "train_limit": args.limit, "test_limit": args.test_limit}
    settings = dataclasses.replace(
        ReportSettings.quick() if args.quick else ReportSettings(),
        **{name: value for name, value in given.items() if value is not None},
    )
    with ctrl_c_kept():  # a Ctrl-C while TensorFlow traces or converts stays a Ctrl-C
        # A large folder's scan and decoding show their progress, as `aekeras train`'s do.
        build_report(args.out, settings, source=args.source, verbose=True, **read_options(args))
