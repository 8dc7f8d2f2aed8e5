"""Thin front for `aekeras onnx`; see `python scripts/onnx.py --help`."""

import sys

from aekeras.cli import main

if __name__ == "__main__":
    sys.exit(main(["onnx", *sys.argv[1:]]))
