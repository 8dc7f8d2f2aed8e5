"""Progress: `fit`'s bar with several steps per call, and the long loops outside `fit`.

Test-set evaluation (the VAE's importance-sampled likelihood above all),
and the LiteRT, ONNX and SavedModel checks of `aekeras tflite` and
`aekeras onnx`, take from seconds to minutes; they report through
`tracked` (a Keras progress bar on a terminal or in a notebook, plain lines
otherwise), silent unless asked. Every aekeras model's `fit`, `evaluate`
and `predict` show `StepProgbarLogger`'s bar.
"""

import sys
import time

import keras

from aekeras.interrupts import raise_if_pressed

# Plain lines: one each time another tenth is done.
LINES = 10


def redraws_in_place(stream):
    """Whether `stream` shows a progress bar redrawn in place: a terminal, or a notebook's output.

    Keras draws its bar with carriage returns and backspaces wherever it
    runs, which a log file keeps as one ever longer line.
    """
    return stream.isatty() or (stream is sys.stdout and "ipykernel" in sys.modules)


def fit_verbosity(verbose, stream=None):
    """Keras's `verbose` for `fit`: its bar (1) only where it redraws in place, else one line per epoch (2)."""
    if verbose == 1 and not redraws_in_place(stream or sys.stdout):
        return 2
    return verbose


class Progress:
    """Counts the steps of a loop and shows them.

    Args:
        total: the number of steps, or None when unknown.
        description: what the loop does, shown with the counts.
        stream: where plain lines go (default standard output); where a
            bar redraws in place (`redraws_in_place`), Keras's `Progbar`
            draws one instead.
    """

    def __init__(self, total, description, stream=None):
        self.stream = stream or sys.stdout
        self.total = total
        self.description = description
        self.done = 0
        self.started = time.monotonic()
        self._bar = None
        self._next_line = 1
        if redraws_in_place(self.stream):
            print(description, file=self.stream, flush=True)
            self._bar = keras.utils.Progbar(total)

    def advance(self, steps=1):
        self.done += steps
        if self._bar is not None:
            self._bar.update(self.done)
            return
        finished = self.total is not None and self.done >= self.total
        due = self.total is None or self.done * LINES >= self._next_line * self.total
        if due or finished:
            of = "" if self.total is None else f"/{self.total}"
            seconds = time.monotonic() - self.started
            print(f"{self.description}: {self.done}{of} ({seconds:.0f} s)", file=self.stream, flush=True)
            while self.total is not None and self._next_line * self.total <= self.done * LINES:
                self._next_line += 1


def tracked(iterable, total, description, enabled=True, stream=None):
    """Yields from `iterable`, showing one step per item when `enabled`.

    Each item is a safe point for a Ctrl-C (`interrupts.raise_if_pressed`):
    one that `ctrl_c_kept(at_safe_points=True)` held back is raised there.
    """
    progress = Progress(total, description, stream) if enabled else None
    for item in iterable:
        raise_if_pressed()
        yield item
        if progress is not None:
            progress.advance()


class StepProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, never counting past the steps of an epoch.

    With several steps per call (`steps_per_execution`), Keras reports each
    call as ending at its last possible step, so the last call of an epoch
    drew 256/235 for MNIST, and 32/1 with a bar 32 times too long and a
    negative time left for a one-batch data set, before the epoch's end set
    it right (keras-team/keras#20861). Where the epoch's steps are known,
    this bar stops at them.
    """

    # As Keras's own bar, which Keras runs asynchronously where it can.
    async_safe = True

    def _within_epoch(self, batch):
        return batch if self.target is None else min(batch, self.target - 1)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(self._within_epoch(batch), logs)

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(self._within_epoch(batch), logs)

    def on_predict_batch_end(self, batch, logs=None):
        super().on_predict_batch_end(self._within_epoch(batch), logs)
