"""Progress: `fit`'s bar with several steps per call; long loops' plain lines off a terminal, a bar on one."""

import io
import re
import sys
import types

import keras
from test_case import mnist

from aekeras.models import DenseAutoencoder
from aekeras.progress import Progress, fit_verbosity, tracked


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_each_tenth_and_at_the_end():
    stream = io.StringIO()
    assert list(tracked(range(25), 25, "checking", stream=stream)) == list(range(25))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert [line.split(" (")[0] for line in lines[:2]] == ["checking: 3/25", "checking: 5/25"]
    assert lines[-1].startswith("checking: 25/25 (")


def test_unknown_totals_and_silence():
    stream = io.StringIO()
    progress = Progress(None, "reading", stream)
    progress.advance()
    progress.advance(2)
    assert [line.split(" (")[0] for line in stream.getvalue().splitlines()] == ["reading: 1", "reading: 3"]
    quiet = io.StringIO()
    assert list(tracked("abc", 3, "quiet", enabled=False, stream=quiet)) == ["a", "b", "c"]
    assert quiet.getvalue() == ""


def test_a_terminal_gets_a_progress_bar(capsys):
    stream = Terminal()
    list(tracked(range(4), 4, "converting", stream=stream))
    assert stream.getvalue() == "converting\n"
    # Keras's Progbar draws on standard output, ending at 4/4.
    assert "4/4" in capsys.readouterr().out


def test_fit_draws_its_bar_only_on_a_terminal():
    assert [fit_verbosity(v, Terminal()) for v in (0, 1, 2)] == [0, 1, 2]
    assert [fit_verbosity(v, io.StringIO()) for v in (0, 1, 2)] == [0, 2, 2]


def test_a_notebook_gets_bars_on_its_output_and_lines_in_files(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert fit_verbosity(1) == 1 and fit_verbosity(1, io.StringIO()) == 2
    list(tracked(range(4), 4, "converting"))
    output = capsys.readouterr().out
    assert output.startswith("converting\n") and "4/4" in output and "converting: 4/4" not in output
    log = io.StringIO()
    list(tracked(range(4), 4, "converting", stream=log))
    assert log.getvalue().splitlines()[-1].startswith("converting: 4/4 (")


def _bar_counts(output, steps):
    """Every "n/steps" a Keras progress bar drew, read past its colour codes."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    return [int(n) for n in re.findall(rf"(\d+)/{steps} ", plain)]


def test_the_bars_of_fit_evaluate_and_predict_stop_at_the_steps_run(capsys):
    model = DenseAutoencoder(latent_dim=8)
    # Three batches in one call of up to four steps: Keras reports the call
    # as ending at step 4, and a bar's first update is always drawn.
    model.compile(optimizer="adam", steps_per_execution=4)
    dataset = mnist("train", limit=384, batch_size=128, value_range=model.value_range)
    model.fit(dataset, epochs=2, verbose=1)
    after_fit = capsys.readouterr().out
    model.evaluate(dataset, verbose=1)
    after_evaluate = capsys.readouterr().out
    model.predict(dataset, verbose=1)
    after_predict = capsys.readouterr().out
    for output, ends in [(after_fit, 2), (after_evaluate, 1), (after_predict, 1)]:
        counts = _bar_counts(output, 3)
        assert max(counts) == 3 and counts.count(3) >= ends, output
    assert model.optimizer.iterations.numpy() == 6
    model.fit(dataset, epochs=1, verbose=0)
    model.evaluate(dataset, verbose=0)
    assert capsys.readouterr().out == ""
    # A bar of one's own is the only one.
    model.fit(dataset, epochs=2, verbose=1, callbacks=[keras.callbacks.ProgbarLogger()])
    assert capsys.readouterr().out.count("Epoch 1/2") == 1
