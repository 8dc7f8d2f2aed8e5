"""Thin front for `aekeras report`; see `python scripts/report.py --help`."""

import sys

from aekeras.cli import entry_point

if __name__ == "__main__":
    sys.exit(entry_point(["report", *sys.argv[1:]]))
