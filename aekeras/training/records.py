"""What a run records: its history, its environment and `run.json` (`SETTINGS_FILE`)."""

import csv
import json
import platform
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import aekeras
from aekeras.errors import SettingsChangedError
from aekeras.export import SETTINGS_FILE
from aekeras.staging import write_atomically


def environment():
    """Library versions and machine, recorded with every run."""
    return {
        "aekeras": aekeras.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        # 0: TensorFlow's own choice, one per core.
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        # None: Grappler's own (it skips graphs of fewer than 4 nodes).
        "grappler_min_graph_nodes": tf.config.optimizer.get_experimental_options().get("min_graph_nodes"),
        "onednn": _onednn_enabled(),
    }


def _onednn_enabled():
    """Whether TensorFlow runs oneDNN's kernels (`TF_ENABLE_ONEDNN_OPTS`, read as TensorFlow loads)."""
    from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own check; no public one

    return bool(_pywrap_util_port.IsMklEnabled())


def read_history(path):
    """The per-epoch metrics of a run's `history.csv`, resumed epochs included.

    A run killed after logging an epoch but before backing it up logs that
    epoch again when it resumes; the last row of each epoch wins.
    """
    with open(path, newline="") as f:
        rows = list({row["epoch"]: row for row in csv.DictReader(f)}.values())
    keys = rows[0].keys() if rows else ()
    # CSVLogger writes "NA" in the val_* columns of epochs not validated, and
    # in every row where no epoch is: such a column is left out, a gap is None.
    return {
        key: [None if row[key] == "NA" else float(row[key]) for row in rows]
        for key in keys
        if not all(row[key] == "NA" for row in rows)
    }


def check_history(path, epochs):
    """Refuses a `history.csv` whose rows of the first `epochs` epochs a resume could not keep, before training.

    Read only after the resumed epochs, a garbled or edited file failed as
    a traceback once the model was trained and saved, and again on every
    rerun. Rows after `epochs` (one cut short by a kill) are `trim_history`'s.

    Raises:
        SettingsChangedError: naming the file, if those rows are not epochs of numbers.
    """
    path = Path(path)
    if not path.is_file():
        return
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        # An empty file is a run killed before its first row; CSVLogger appends to any other.
        if rows and rows[0][:1] != ["epoch"]:
            raise ValueError(f"a header of {rows[0][:3]}, not epoch and the metrics")
        for row in rows[1:]:
            if row and int(row[0]) < epochs:
                if len(row) != len(rows[0]):
                    raise ValueError(
                        f"{len(row)} values in epoch {row[0]}'s row, {len(rows[0])} in the header"
                    )
                for value in row[1:]:
                    if value != "NA":
                        float(value)
    except (ValueError, csv.Error) as e:
        raise SettingsChangedError(
            f"{path} is damaged (expected the rows CSVLogger writes: {str(e)[:100]}); move it aside: its rows "
            "are the run's records, and the backup resumes without them"
        ) from None


def trim_history(path, epochs):
    """Keeps the rows of a run's `history.csv` for its first `epochs` epochs (the ones its backup holds).

    A run interrupted after logging an epoch but before backing it up logs
    that epoch again when it resumes: its earlier row goes, so the file
    holds each epoch once, as an uninterrupted run's does.
    """
    path = Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs]
    if kept != rows:

        def write(partial):
            with open(partial, "w", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows(kept)  # as CSVLogger writes

        write_atomically(path, write)


def read_record(folder):
    """The `run.json` in `folder` (a run folder or an export), or None."""
    path = folder / SETTINGS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def data_options(record):
    """`(source, read options)` of the data a recorded run trained on."""
    data = record["data"]
    source, options = data["source"], dict(data["options"])
    if not isinstance(source, str):  # an edited record: a path or name, not a number
        raise TypeError(f"its data source is {source!r}, not a name or path")
    return source, options
