"""Ctrl-C as the KeyboardInterrupt it was, wherever in TensorFlow it lands."""

import contextlib
import io
import signal
import sys
import threading

# The presses of the `ctrl_c_kept` blocks under way, innermost last.
_presses = []


def raise_if_pressed():
    """Raises KeyboardInterrupt if a Ctrl-C in the `ctrl_c_kept` block under way was dropped.

    For a step that cannot be undone (publishing an export): a press a
    finalizer dropped must stop the work before it, not after.
    """
    if _presses and _presses[-1]:
        raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_kept():
    """Within it, a Ctrl-C always ends the block as a KeyboardInterrupt.

    Python raises KeyboardInterrupt wherever the signal finds it. Inside
    TensorFlow's C code (converting an array, tracing a step, importing it)
    that comes out as another error (a SystemError, pybind11's
    `error_already_set`, an ImportError), and in a finalizer it is printed
    and dropped, so the work would go on as if no one had asked it to stop.
    Here an error after a Ctrl-C is the interrupt, and a Ctrl-C that was
    dropped is raised when the block ends (or at `raise_if_pressed`). Outside the main thread, where
    no signal handler can be set, and in a process that ignores Ctrl-C (one
    a script started in the background), the block runs as it is.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        yield
        return
    pressed = []
    stderr = sys.stderr

    def on_ctrl_c(signum, frame):
        if not pressed:
            # What the interrupted work prints on its way out is dropped: an
            # interrupt inside TensorFlow's C code can be printed there as a
            # traceback (a SystemError from `__import__`) before it unwinds.
            sys.stderr = io.StringIO()
        pressed.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    _presses.append(pressed)
    try:
        yield
    except Exception:
        if pressed:
            raise KeyboardInterrupt from None
        raise
    finally:
        _presses.pop()
        signal.signal(signal.SIGINT, previous)
        sys.stderr = stderr
    if pressed:  # raised where nothing passed it on, and dropped
        raise KeyboardInterrupt
