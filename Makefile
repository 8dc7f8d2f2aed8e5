# The two commands the README documents: `make train` and `make test`.
# Each sets up a fresh virtual environment (.venv) first if needed.

PYTHON ?= python3
VENV ?= .venv
# The offline MNIST copy beside the project; override for another folder.
AEKERAS_DATA_DIR ?= $(abspath ../shared/data/mnist)
export AEKERAS_DATA_DIR

.PHONY: setup train test report bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $@

# PyTorch (CPU build) for the benchmark only.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e ".[dev,bench]"
	touch $@

setup: $(VENV)/.installed

# The lecture's dense autoencoder, 20 epochs, exported to saved_models/dense/.
train: setup
	$(VENV)/bin/aekeras train dense --epochs 20

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile

# Every application of the lecture and the lesson, measured (about 28 minutes on 2 cores, less with its cache).
report: setup
	$(VENV)/bin/aekeras report --out reports/

# aekeras against PyTorch; writes BENCHMARKS.md.
bench: $(VENV)/.bench-installed
	$(VENV)/bin/python benchmarks/bench.py --out BENCHMARKS.md

clean:
	rm -rf runs reports .pytest_cache build dist *.egg-info  # build/ would ship deleted modules in the next wheel
