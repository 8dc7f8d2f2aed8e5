"""Thin front for `aekeras export`; see `python scripts/export.py --help`."""

import sys

from aekeras.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
