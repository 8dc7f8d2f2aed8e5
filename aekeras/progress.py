"""Progress of the long loops outside `fit`: a Keras progress bar on a terminal, plain lines otherwise.

Test-set evaluation (the VAE's importance-sampled likelihood above all),
and the LiteRT, ONNX and SavedModel checks of `aekeras tflite` and
`aekeras onnx`, take from seconds to minutes; they report through
`tracked`, silent unless asked.
"""

import sys
import time

import keras

# Plain lines: one each time another tenth is done.
LINES = 10


class Progress:
    """Counts the steps of a loop and shows them.

    Args:
        total: the number of steps, or None when unknown.
        description: what the loop does, shown with the counts.
        stream: where plain lines go (default standard output); on a
            terminal, Keras's `Progbar` draws a bar instead.
    """

    def __init__(self, total, description, stream=None):
        self.stream = stream or sys.stdout
        self.total = total
        self.description = description
        self.done = 0
        self.started = time.monotonic()
        self._bar = None
        self._next_line = 1
        if self.stream.isatty():
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
    """Yields from `iterable`, showing one step per item when `enabled`."""
    progress = Progress(total, description, stream) if enabled else None
    for item in iterable:
        yield item
        if progress is not None:
            progress.advance()
