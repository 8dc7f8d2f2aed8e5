"""The errors aekeras reports to users in one line, importable without TensorFlow.

The command line prints their message and exits with status 2.
"""

import errno
import os
import re

# A full disk, quota or file size limit (`ulimit -f`).
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# The system's refusals, which say nothing of a file's bytes: no room, no
# memory, no file handles (`ulimit -n`), no permission, a device gone.
SYSTEM_REFUSALS = (*DISK_FULL, errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.EACCES, errno.EPERM, errno.EIO)


def system_errno(error, numbers=SYSTEM_REFUSALS):
    """The first of `numbers` that `error` carries, as an OSError's errno or in TensorFlow's or HDF5's words, else None.

    TensorFlow and HDF5 put the system's words (`os.strerror`) in their
    own errors' text, with no errno attribute.
    """
    if isinstance(error, OSError) and error.errno in numbers:
        return error.errno
    text = str(error)
    return next((number for number in numbers if os.strerror(number) in text), None)


def not_the_files_fault(error):
    """Whether a file failed to load for the system's reasons, or for an op this TensorFlow lacks, not for damage.

    Called "damaged", a healthy backup or export would be discarded on
    that advice: these are raised as they are, for the command line's
    out-of-resources line or a traceback.
    """
    text = str(error)
    return (
        system_errno(error) is not None or "OOM when allocating" in text or "Op type not registered" in text
    )


def without_function_names(text):
    """A TensorFlow error's text less the `{{function_node ...}}` names it puts before its own words."""
    return re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)


def first_line(error, default=""):
    """The first line of an error's words (or a text), less TensorFlow's function names; `default` where it has none.

    For the one-line messages that quote a library's reason.
    """
    lines = without_function_names(str(error)).strip().splitlines()
    return lines[0] if lines else default


class DataError(ValueError):
    """A data source is missing, malformed or inconsistent.

    The message names the file or folder and what was expected.
    """


class ModelFileError(ValueError):
    """A file that is not a loadable aekeras model."""


class ContractChangeError(ValueError):
    """Publishing would change the signatures a served model name offers its clients."""


class SettingsChangedError(ValueError):
    """A run folder holds the backup of a run made with other settings."""


class RunInUseError(ValueError):
    """Another process is training in the same run folder."""


class Interrupted(Exception):
    """A Ctrl-C, already reported: what was kept, and how to go on."""


class TrainingInterrupted(Interrupted):
    """Training was interrupted (Ctrl-C); what was kept and how to go on.

    Attributes:
        run_dir: the run's folder.
        epochs_kept: epochs whose backup the next run resumes after.
        epochs: epochs the run was asked for.
    """

    def __init__(self, run_dir, epochs_kept, epochs):
        super().__init__(f"{run_dir}: interrupted with {epochs_kept} of {epochs} epochs kept")
        self.run_dir, self.epochs_kept, self.epochs = run_dir, epochs_kept, epochs


class CheckInterrupted(Interrupted):
    """A conversion was interrupted (Ctrl-C) while its finished files were being checked.

    Attributes:
        files: the converted files, complete and kept, though not checked.
    """

    def __init__(self, files):
        self.files = list(files)
        shown = ", ".join(str(f) for f in self.files)
        super().__init__(f"interrupted while checking {shown}; complete and kept, but not checked")


class ClusterError(Exception):
    """A multi-worker run stopped because a worker of its cluster stopped, or ran another command.

    The message says what TensorFlow reported, what this worker kept and
    how to go on; the command line prints it and exits with status 1.
    """
