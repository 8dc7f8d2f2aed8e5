"""Thin front for `aekeras export`; see `python scripts/export.py --help`."""

import sys

from aekeras.cli import entry_point

if __name__ == "__main__":
    sys.exit(entry_point(["export", *sys.argv[1:]]))
