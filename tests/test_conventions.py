"""Keras conventions the models honour, and the code's own rules."""

import ast
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from test_case import mnist

from aekeras.models import VAE, DenseAutoencoder

PACKAGE = Path(__file__).resolve().parent.parent / "aekeras"


def test_compile_refuses_a_loss_saying_where_it_is_set():
    with pytest.raises(
        ValueError, match=r"DenseAutoencoder sets its own loss .*compile\(loss=...\) would be ignored"
    ):
        DenseAutoencoder(latent_dim=4).compile(optimizer="adam", loss="mae")


def test_compiled_metrics_are_computed_on_the_reconstructions():
    train = mnist("train", limit=512, value_range=(-1, 1))
    test = mnist("test", limit=256, value_range=(-1, 1))
    model = DenseAutoencoder(latent_dim=8)
    model.compile(optimizer="adam", metrics=["mae"])
    history = model.fit(train, epochs=1, validation_data=test, verbose=0).history
    assert {"loss", "reconstruction_loss", "mae", "val_mae"} <= set(history)
    images = np.concatenate([batch.numpy() for batch in test])
    expected = np.mean(np.abs(model.predict(images, verbose=0) - images))
    assert model.evaluate(test, verbose=0, return_dict=True)["mae"] == pytest.approx(expected, rel=1e-5)


def test_callbacks_monitor_any_loss_term_without_a_mode():
    train = mnist("train", limit=256, batch_size=64)
    test = mnist("test", limit=128, batch_size=64)
    model = VAE(latent_dim=2, hidden_dims=(16,), seed=0)
    model.compile(optimizer="adam")
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_reconstruction_loss", patience=0, min_delta=1e9)
    stop = keras.callbacks.EarlyStopping(monitor="val_kl_loss", patience=5)
    model.fit(train, epochs=2, validation_data=test, callbacks=[plateau, stop], verbose=0)
    # Both read "smaller is better"; no improvement of 1e9 lowers the rate.
    assert plateau.monitor_op is keras.ops.less and stop.monitor_op is keras.ops.less
    assert float(model.optimizer.learning_rate) < 1e-3


def _functions(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_function_in_the_package_is_over_60_lines():
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{name} ({lines} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, lines in _functions(path)
        if lines > 60
    ]
    assert long == []


def test_the_command_line_parses_without_tensorflow():
    # --help and argument errors must answer without loading TensorFlow.
    probe = "import sys; from aekeras.cli import build_parser; build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'torch')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_reports_figures_leave_the_users_matplotlib_backend_alone(tmp_path):
    # A program (a notebook) that imports the report draws its own figures on its own backend.
    probe = (
        "import matplotlib, numpy as np; matplotlib.use('svg'); from aekeras import plotting; "
        f"plotting.image_rows([('row', np.ones((1, 4, 4, 1)))], {str(tmp_path / 'rows.png')!r}, columns=1); "
        "print(matplotlib.get_backend())"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "svg"
    assert (tmp_path / "rows.png").read_bytes().startswith(b"\x89PNG")
