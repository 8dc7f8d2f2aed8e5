"""Thin front for the benchmarks; see `python scripts/bench.py --help`."""

import sys

from aekeras.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
