"""Thin front for `aekeras tflite`; see `python scripts/tflite.py --help`."""

import sys

from aekeras.cli import entry_point

if __name__ == "__main__":
    sys.exit(entry_point(["tflite", *sys.argv[1:]]))
