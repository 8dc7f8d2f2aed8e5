"""Ctrl-C as the KeyboardInterrupt it was, wherever in TensorFlow it lands."""

import contextlib
import io
import signal
import sys
import threading

from aekeras.errors import Interrupted


class _Block:
    """A `ctrl_c_kept` block under way: its Ctrl-C presses, and whether its work has published."""

    def __init__(self, at_safe_points, stderr):
        self.presses = 0
        self.published = False
        self.at_safe_points = at_safe_points
        self.stderr = stderr  # as the block found it

    def on_ctrl_c(self, signum, frame):
        """The block's signal handler: counts the press in every block under way, and raises it unless held back."""
        for each in _blocks:
            each.presses += 1
        # The first press of the work under way: the blocks around it count it too.
        first = max(each.presses for each in [self, *_blocks]) == 1
        if self.published or (self.at_safe_points and first):
            return
        if sys.stderr is self.stderr:
            # What the interrupted work prints on its way out is dropped: an
            # interrupt inside TensorFlow's C code can be printed there as a
            # traceback (a SystemError from `__import__`) before it unwinds.
            sys.stderr = io.StringIO()
        raise KeyboardInterrupt


# The `ctrl_c_kept` blocks under way, innermost last.
_blocks = []
# The signals that end the work as Ctrl-C does (`stops_as_ctrl_c`).
_routed = []


def stops_as_ctrl_c():
    """From here on, SIGTERM (a supervisor's stop, `kill`) and SIGHUP (its terminal closed) end the work as Ctrl-C does.

    Also in a process that ignores Ctrl-C (a script's background job,
    which a shell starts with SIGINT ignored): its Ctrl-C stays ignored,
    but a stop still ends it in one line, finishing what was published.
    A SIGHUP that the process ignores (`nohup`) stays ignored.
    """
    for number in (signal.SIGTERM, signal.SIGHUP):
        if number == signal.SIGHUP and signal.getsignal(number) is signal.SIG_IGN:
            continue
        signal.signal(number, _on_stop)
        if number not in _routed:
            _routed.append(number)


def _on_stop(signum, frame):
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # Python's default_int_handler, or a block's own
        handler(signal.SIGINT, frame)
    else:  # Ctrl-C ignored
        raise KeyboardInterrupt


def _interrupt_signals():
    """The signals a `ctrl_c_kept` block takes as Ctrl-C: SIGINT unless ignored, SIGTERM and SIGHUP where routed.

    None outside the main thread, where no signal handler can be set.
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    signals = [] if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else [signal.SIGINT]
    # Ours, or an outer block's:
    return signals + [number for number in _routed if callable(signal.getsignal(number))]


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
def ctrl_c_kept(at_safe_points=False):
    """Within it, a Ctrl-C always ends the block as a KeyboardInterrupt, until its work publishes.

    Python raises KeyboardInterrupt wherever the signal finds it. Inside
    TensorFlow's C code (converting an array, tracing a step, importing it)
    that comes out as another error (a SystemError, pybind11's
    `error_already_set`, an ImportError), and in a finalizer it is printed
    and dropped, so the work would go on as if no one had asked it to stop.
    Here an error after a Ctrl-C is the interrupt, and a Ctrl-C that was
    dropped is raised when the block ends (or at `raise_if_pressed`). Once
    the work inside has published (`publishing`), a Ctrl-C is noted and the
    block runs to its end. Errors that report an interrupt
    themselves (`errors.Interrupted`) pass as they are. A SIGTERM or
    SIGHUP is taken as a Ctrl-C once `stops_as_ctrl_c` was called. Outside
    the main thread, where no signal handler can be set, and in a process
    that ignores Ctrl-C (one a script started in the background) and has
    not routed the others, the block runs as it is.

    With `at_safe_points`, for work that calls `raise_if_pressed` often (a
    `fit` with `callbacks.StopAfterCtrlC`, a loop over batches in
    `progress.tracked`) or before it writes (an export's `publishing`),
    the first Ctrl-C is raised there, not where it lands: raised inside
    TensorFlow's C code (a dataset's iterator being made), it once
    corrupted the heap, and the process aborted ("free(): invalid next
    size", killed by SIGABRT) where it should have said what was kept. A
    second Ctrl-C is raised at once, for work stuck before its next safe
    point.
    """
    signals = _interrupt_signals()
    if not signals:
        yield
        return
    block = _Block(at_safe_points, sys.stderr)
    previous = {number: signal.signal(number, block.on_ctrl_c) for number in signals}
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
        for number, handler in previous.items():
            signal.signal(number, handler)
        sys.stderr = block.stderr
    if block.presses and not block.published:  # raised where nothing passed it on, and dropped
        raise KeyboardInterrupt


def stoppable(call):
    """`call()`, which waits in C++ code that holds Python's lock, ended by Ctrl-C all the same.

    For a wait before anything is written (the workers of a cluster
    meeting): no Python signal handler can run until the call returns, so
    Ctrl-C and SIGTERM were ignored until every worker had started, and only
    `kill -9` stopped a worker whose peers never came. Here they take their
    default action meanwhile: the process ends at once, killed by the
    signal, with nothing to clean up. (A SIGTERM is set to its default
    too, but TensorFlow's cluster set-up installs a SIGTERM handler of its
    own while it waits, measured: that wait still takes only SIGINT or
    SIGKILL.)
    """
    previous = {number: signal.signal(number, signal.SIG_DFL) for number in _interrupt_signals()}
    try:
        return call()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
