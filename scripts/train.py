"""Thin front for `aekeras train`; see `python scripts/train.py --help`."""

import sys

from aekeras.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
