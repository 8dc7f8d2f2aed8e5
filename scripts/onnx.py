"""Thin front for `aekeras onnx`; see `python scripts/onnx.py --help`."""

import sys

from aekeras.cli import entry_point

if __name__ == "__main__":
    sys.exit(entry_point(["onnx", *sys.argv[1:]]))
