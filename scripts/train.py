"""Thin front for `aekeras train`; see `python scripts/train.py --help`."""

import sys

from aekeras.cli import entry_point

if __name__ == "__main__":
    sys.exit(entry_point(["train", *sys.argv[1:]]))
