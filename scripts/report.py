"""Thin front for `aekeras report`; see `python scripts/report.py --help`."""

import sys

from aekeras.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
