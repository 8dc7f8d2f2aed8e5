"""The `aekeras` command: one module per subcommand.

Arguments are checked before any data is read or any training starts; a bad
one ends the command with exit status 2 and one line on stderr. TensorFlow
loads only once a command runs, quietly unless `--verbose`.
"""

import importlib
import sys

from aekeras.cli.common import EXIT_USAGE, Parser, UsageError, start_tensorflow
from aekeras.errors import DataError, ModelFileError

SUBCOMMANDS = ("train", "export", "tflite", "report")


def build_parser():
    parser = Parser(prog="aekeras", description="Autoencoders for Keras 3.")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"aekeras.cli.{name}").add_parser(commands)
    return parser


def main(argv=None):
    """Runs the command; returns its exit status."""
    try:
        args = build_parser().parse_args(argv)
        start_tensorflow(args.verbose)
        args.run(args)
    except (UsageError, DataError, ModelFileError) as e:
        print(f"aekeras: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as e:
        print(f"aekeras: error: {e}", file=sys.stderr)
        return 1
    return 0
