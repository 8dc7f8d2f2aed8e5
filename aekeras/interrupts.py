"""Ctrl-C as the KeyboardInterrupt it was, wherever in TensorFlow it lands."""

import contextlib
import signal
import threading


@contextlib.contextmanager
def ctrl_c_kept():
    """Within it, a Ctrl-C always ends the block as a KeyboardInterrupt.

    Python raises KeyboardInterrupt wherever the signal finds it. Inside
    TensorFlow's C code (converting an array, tracing a step, importing it)
    that comes out as another error (a SystemError, pybind11's
    `error_already_set`, an ImportError), and in a finalizer it is printed
    and dropped, so the work would go on as if no one had asked it to stop.
    Here an error after a Ctrl-C is the interrupt, and a Ctrl-C that was
    dropped is raised when the block ends. Outside the main thread, where
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

    def on_ctrl_c(signum, frame):
        pressed.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    except Exception:
        if pressed:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:  # raised where nothing passed it on, and dropped
        raise KeyboardInterrupt
