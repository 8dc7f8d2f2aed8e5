"""Thin front for `aekeras tflite`; see `python scripts/tflite.py --help`."""

import sys

from aekeras.cli import main

if __name__ == "__main__":
    sys.exit(main(["tflite", *sys.argv[1:]]))
