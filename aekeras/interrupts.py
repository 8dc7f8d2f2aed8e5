"""Ctrl-C as the KeyboardInterrupt it was, wherever in TensorFlow it lands."""

import contextlib
import io
import signal
import sys
import threading

from aekeras.errors import Interrupted


class _Block:
    """A `ctrl_c_kept` block under way: its Ctrl-C presses, and whether its work has published."""

    def __init__(self, published=False):
        self.presses = 0
        self.published = published


# The `ctrl_c_kept` blocks under way, innermost last.
_blocks = []


def raise_if_pressed():
    """Raises KeyboardInterrupt if a Ctrl-C in the `ctrl_c_kept` blocks under way was dropped.

    For a step that cannot be undone (publishing an export): a press a
    finalizer dropped must stop the work before it, not after.
    """
    if any(block.presses and not block.published for block in _blocks):
        raise KeyboardInterrupt


def publishing():
    """Called right before the step that cannot be undone (a version folder's rename).

    A Ctrl-C dropped before it is raised here, and nothing is published;
    from here on, a Ctrl-C lets the `ctrl_c_kept` blocks under way finish
    their work (the records and the cleaning up after publishing), which a
    rerun would otherwise redo or publish twice.
    """
    raise_if_pressed()
    for block in _blocks:
        block.published = True


@contextlib.contextmanager
def ctrl_c_kept(published=False):
    """Within it, a Ctrl-C always ends the block as a KeyboardInterrupt, until its work publishes.

    Python raises KeyboardInterrupt wherever the signal finds it. Inside
    TensorFlow's C code (converting an array, tracing a step, importing it)
    that comes out as another error (a SystemError, pybind11's
    `error_already_set`, an ImportError), and in a finalizer it is printed
    and dropped, so the work would go on as if no one had asked it to stop.
    Here an error after a Ctrl-C is the interrupt, and a Ctrl-C that was
    dropped is raised when the block ends (or at `raise_if_pressed`). Once
    the work inside has published (`publishing`, or `published=True` for a
    block that only finishes what a publication began), a Ctrl-C is noted
    and the block runs to its end. Errors that report an interrupt
    themselves (`errors.Interrupted`) pass as they are. Outside the main
    thread, where no signal handler can be set, and in a process that
    ignores Ctrl-C (one a script started in the background), the block runs
    as it is.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        yield
        return
    block = _Block(published)
    stderr = sys.stderr

    def on_ctrl_c(signum, frame):
        for each in _blocks:
            each.presses += 1
        if block.published:
            return
        if block.presses == 1:
            # What the interrupted work prints on its way out is dropped: an
            # interrupt inside TensorFlow's C code can be printed there as a
            # traceback (a SystemError from `__import__`) before it unwinds.
            sys.stderr = io.StringIO()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    _blocks.append(block)
    try:
        yield
    except Interrupted:
        raise
    except Exception:
        if block.presses and not block.published:
            raise KeyboardInterrupt from None
        raise
    finally:
        _blocks.pop()
        signal.signal(signal.SIGINT, previous)
        sys.stderr = stderr
    if block.presses and not block.published:  # raised where nothing passed it on, and dropped
        raise KeyboardInterrupt
