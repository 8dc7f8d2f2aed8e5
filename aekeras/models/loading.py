"""Loading `.keras` files safely."""

import os
import zipfile

import keras

from aekeras import registry
from aekeras.errors import ModelFileError, first_line, not_the_files_fault
from aekeras.models.base import BaseAutoencoder
from aekeras.models.blocks import load_with_older_weight_names


def load_model(path):
    """Loads an aekeras model from a `.keras` file in Keras's safe mode.

    Files written by earlier aekeras versions load too
    (`blocks.load_with_older_weight_names`), and so do models of the
    variants installed as `aekeras.models` entry points (their modules are
    imported first, which registers their classes with Keras).

    Raises:
        ModelFileError: in one line, if the file is not a `.keras` archive
            or is a damaged one, asks for Python code (a lambda) or for a
            class or function that is not registered, or holds something
            other than an aekeras autoencoder.
    """
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such file (expected a .keras file model.save wrote)")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a .keras file (expected the zip archive model.save writes)")
    # The installed variants (the `aekeras.models` entry points) register their classes when imported.
    registry.load_plugins()
    try:
        model = load_with_older_weight_names(lambda: keras.models.load_model(path, safe_mode=True))
    except (ValueError, TypeError, KeyError) as e:
        # Keras wraps the refusal once per enclosing layer; the innermost
        # error names what was refused.
        root = e
        while root.__cause__ or root.__context__:
            root = root.__cause__ or root.__context__
        reason = str(root).strip().strip("\"'").split(". ")[0].splitlines()[0]
        raise ModelFileError(f"{path}: cannot load it in Keras safe mode: {reason}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        # A copy garbled or cut short inside the archive fails only as Keras
        # reads it: a member's CRC, or the HDF5 weights file within.
        if not_the_files_fault(e):
            raise
        raise ModelFileError(
            f"{path}: damaged .keras file ({first_line(e, type(e).__name__)}); expected the archive model.save "
            "writes"
        ) from None
    if not isinstance(model, BaseAutoencoder):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, not an aekeras autoencoder")
    return model
