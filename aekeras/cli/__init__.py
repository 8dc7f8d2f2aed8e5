"""The `aekeras` command: one module per subcommand.

Arguments are checked before any data is read or any training starts, and
what needs no TensorFlow (each subcommand's `check`) before it loads; a bad
one ends the command with exit status 2 and one line on stderr. TensorFlow
loads only once a command runs, quietly unless `--verbose`.
"""

import errno
import faulthandler
import gc
import importlib
import os
import resource
import shlex
import signal
import sys
import warnings

import aekeras
from aekeras.cli.common import (
    EXIT_USAGE,
    Parser,
    UsageError,
    keras_defaults,
    load_plugins_quietly,
    start_tensorflow,
)
from aekeras.errors import (
    CheckInterrupted,
    ClusterError,
    ContractChangeError,
    DataError,
    ModelFileError,
    RunInUseError,
    SettingsChangedError,
    TrainingInterrupted,
    first_line,
    system_errno,
    without_function_names,
)
from aekeras.interrupts import ctrl_c_kept, stops_as_ctrl_c
from aekeras.staging import disk_full_errno

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader ended

SUBCOMMANDS = ("train", "export", "tflite", "onnx", "report")


def build_parser():
    parser = Parser(prog="aekeras", description="Autoencoders for Keras 3.")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own log lines")
    parser.add_argument("--version", action="version", version=f"aekeras {aekeras.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"aekeras.cli.{name}").add_parser(commands)
    return parser


def _command(argv):
    """The command line that ran, as a shell would take it again."""
    return shlex.join(["aekeras", *argv])


def _interrupted(error, argv):
    """The one line for Ctrl-C during training: what was kept, and the command that goes on."""
    command = _command(argv)
    if error.epochs_kept == error.epochs:
        return f"aekeras: interrupted after training; `{command}` evaluates and publishes it"
    if error.epochs_kept:
        return (
            f"aekeras: interrupted; {error.run_dir} keeps epoch {error.epochs_kept} of {error.epochs}, and "
            f"`{command}` resumes after it"
        )
    return f"aekeras: interrupted in the first epoch, before anything was kept; `{command}` starts afresh"


def main(argv=None):
    """Runs the command; returns its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # A crash inside TensorFlow's C++ (a signal, not an exception) then
    # shows where Python was, not only an exit status. On the process's own
    # stderr (descriptor 2): a caller's `sys.stderr` (a notebook's, a
    # `redirect_stderr`) may have no descriptor to write to.
    if not faulthandler.is_enabled():
        faulthandler.enable(file=2)
    with warnings.catch_warnings():  # the caller's filters, back once `_warning_raised` quieted them
        status, line = _run(argv)
        if status:
            gc.collect()  # what a failed command left open is closed here, under that filter
    if line is not None:
        try:
            print(line, file=sys.stderr, flush=True)
        except OSError:
            pass  # stderr is gone: a terminal closed (EIO, after its SIGHUP), a pipe's reader ended
    return status


def _run(argv):
    """Runs the command; returns `(exit status, the one line to end it with, or None)`."""
    args = None
    try:
        with ctrl_c_kept():  # as for TensorFlow's import below, which a variant's module may start
            load_plugins_quietly("--verbose" in argv)
        args = build_parser().parse_args(argv)
        if "tensorflow" not in sys.modules:  # read as it loads (a variant's module, or a caller, may have)
            os.environ.update(getattr(args, "tensorflow_environment", lambda args: {})(args))
        # What needs no TensorFlow is refused before it loads: in a fraction
        # of a second, not the several its import takes.
        args.check(args)
        with ctrl_c_kept():  # TensorFlow's import turns a Ctrl-C into an ImportError
            start_tensorflow(args.verbose)
        with keras_defaults():
            args.run(args)
    except (
        UsageError,
        DataError,
        ModelFileError,
        ContractChangeError,
        SettingsChangedError,
        RunInUseError,
    ) as e:
        return EXIT_USAGE, f"aekeras: error: {e}"
    except (FloatingPointError, ClusterError) as e:
        return 1, f"aekeras: error: {e}"
    except TrainingInterrupted as e:
        return EXIT_INTERRUPTED, _interrupted(e, argv)
    except CheckInterrupted as e:
        return EXIT_INTERRUPTED, f"aekeras: {e} (`{_command(argv)}` converts and checks again)"
    except KeyboardInterrupt:
        if getattr(args, "finished", False):
            # Taken after the command published and reported it, once its
            # blocks had ended (`ctrl_c_kept`): too late to stop anything, and
            # a status of 130 would have a supervisor publish it again.
            return 0, None
        return EXIT_INTERRUPTED, "aekeras: interrupted; nothing was left half-written"
    except BrokenPipeError:
        return _output_closed(), None
    except Exception as e:  # noqa: BLE001 - only a full disk, memory or `-W error` is answered here
        line = _out_of_resources(e, argv) or _warning_raised(e)
        if line is None:
            raise
        return 1, line
    return 0, None


def _warning_raised(error):
    """The one line for a library's warning that `-W error` (PYTHONWARNINGS=error) raised, else None.

    Python then reports what the failed command left unclosed (Keras's
    CSVLogger file) as more warnings raised in finalizers, each with a
    traceback: warnings are ignored until `main` returns.
    """
    raised = any(
        action == "error" and isinstance(error, category) for action, _, category, *_ in warnings.filters
    )
    if not raised:
        return None
    warnings.simplefilter("ignore")
    return (
        f"aekeras: error: {type(error).__name__} raised as an error by -W error (PYTHONWARNINGS): {first_line(error)}; "
        "run the command where warnings are shown, not raised"
    )


def entry_point(argv=None):
    """`main` as the `aekeras` process runs it: SIGTERM and SIGHUP as Ctrl-C, and once it returns, all ignored.

    The work is done and reported by then; a Ctrl-C during Python's and
    TensorFlow's teardown (half a second) would otherwise turn the exit
    status into 130, or print a traceback from an exit handler, after a
    command that succeeded, and a supervisor would run it again. For the
    process alone, then: from Python (a notebook, a script), call `main`,
    which leaves the caller's signal handlers and streams as they were.
    """
    # A supervisor's stop (systemd, Kubernetes, `kill`) ends the command as
    # Ctrl-C does: what was kept, in one line, and nothing half-written. Also
    # where Ctrl-C is ignored (a script's `aekeras train ... &`): killed
    # there, it died with no word, and left a published version unrecorded.
    # A closed terminal's SIGHUP did the same.
    stops_as_ctrl_c()
    # The command runs on TensorFlow: a KERAS_BACKEND the shell sets for the
    # user's own Keras programs (jax, torch) ended it in a traceback from Keras's import.
    os.environ["KERAS_BACKEND"] = "tensorflow"
    _closed_standard_streams_opened()
    _escape_unencodable_output()
    status = main(argv)
    while True:
        try:
            for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(number, signal.SIG_IGN)
            return status
        except KeyboardInterrupt:
            # A signal that came as `main` returned, taken here (Python runs
            # handlers when `signal.signal` starts): too late to stop anything.
            pass


def _closed_standard_streams_opened():
    """Opens the null device on each of descriptors 0, 1 and 2 that the caller closed (`>&-`, `2>&-`).

    A closed one is the lowest free number, which the next file opened
    takes: TensorFlow's C++ log lines (descriptor 2) would go into it, a
    checkpoint or an export. And Python leaves `sys.stdout` or `sys.stderr`
    None, which ended the command in an AttributeError (or, without a
    stderr, in a silent status 1). Their lines now go nowhere, as Python
    prints to a None stream.
    """
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:  # the lowest free number, this one unless a lower one is closed too
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(
                sys, name, open(fd, "r" if fd == 0 else "w", buffering=1 if fd == 2 else -1, closefd=False)
            )


def _escape_unencodable_output():
    """Prints what stdout's encoding cannot spell escaped (`\\xfc`), as Python's stderr does.

    A non-ASCII path under `PYTHONIOENCODING=ascii` or a Latin-1 locale
    ended `aekeras train` in a UnicodeEncodeError as it reported, after
    publishing, with the serving config unwritten.
    """
    if sys.stdout is not None and hasattr(sys.stdout, "reconfigure"):  # None where stdout was closed (`>&-`)
        sys.stdout.reconfigure(errors="backslashreplace")


def _out_of_resources(error, argv):
    """The one line for a full disk, a file size limit, an exhausted memory or open-file limit, else None.

    Python's errors or TensorFlow's (its `OutOfRangeError` for `ulimit -f`).
    """
    text = str(error)
    again = "resumes" if argv[:1] == ["train"] else "starts again"
    disk_full = disk_full_errno(error)
    if disk_full is not None:
        where = _written_file(error, text)
        if disk_full == errno.EFBIG:
            return (
                f"aekeras: error: {where or 'a file'} grew past the largest file this process may write "
                f"(ulimit -f); what was saved before is kept. Raise the limit, and the same command {again}"
            )
        return (
            f"aekeras: error: no space left on the device while writing {where or 'the output'}; what was saved "
            f"before is kept. Free some space, and the same command {again}"
        )
    if (
        isinstance(error, MemoryError)
        or "OOM when allocating" in text
        or system_errno(error, (errno.ENOMEM,))
    ):
        shape = text[text.find("shape[") :].split("]")[0] + "]" if "shape[" in text else "an array"
        return (
            f"aekeras: error: out of memory allocating {shape}; what was saved before is kept. Try a smaller "
            "--image-size, --batch-size or --limit"
        )
    if isinstance(error, ImportError) and "failed to map segment" in text:  # a library past `ulimit -v`
        return f"aekeras: error: too little memory to load TensorFlow ({text}); raise the limit (ulimit -v)"
    # Python's OSError, or in TensorFlow's words:
    if system_errno(error, (errno.EMFILE, errno.ENFILE)) is not None:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return (
            f"aekeras: error: too many open files (this process may open {limit}: ulimit -n); what was saved "
            f"before is kept. Raise the limit, and the same command {again}"
        )
    return _refused(error, text)


def _refused(error, text):
    """The one line for a file the system would not let the command read or write, or an op it lacks, else None.

    Raised as they are rather than called damage (`errors.not_the_files_fault`).
    """
    code = system_errno(error, (errno.EACCES, errno.EPERM, errno.EIO))
    if code is not None:
        where = _written_file(error, text) or "a file"
        return f"aekeras: error: {os.strerror(code).lower()}: {where}; what was saved before is kept"
    if "Op type not registered" in text:
        return (
            f"aekeras: error: {first_line(text)}; the model was made with a newer TensorFlow than this one: "
            "upgrade it"
        )
    return None


def _written_file(error, text):
    """The file a failed read or write names: Python's `filename`, else TensorFlow's words before `;`, else None."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.filename
    return first_line(without_function_names(text).split(";")[0], None)


def _output_closed():
    """Ends quietly where the reader of the command's output went away (`aekeras train ... | head`)."""
    # Python would fail again flushing stdout at exit: it writes to nowhere now.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    try:
        print(
            "aekeras: stopped: its output was closed (the reader of a pipe ended); what was saved is kept, "
            "and the same command resumes a training run",
            file=sys.stderr,
        )
    except OSError:
        pass  # stderr went with it (`2>&1 | head`)
    return EXIT_OUTPUT_CLOSED
