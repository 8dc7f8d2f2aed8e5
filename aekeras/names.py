"""The names and paths a model is published under, checked without TensorFlow.

`aekeras.export` publishes under them, and the command line refuses a bad
one before TensorFlow loads.
"""

import re

from aekeras.errors import ModelFileError

# File names end at 255 bytes, and the files named after a model add up to
# 57 characters to its name (`.partial-<hex>-NAME-int16x8.tflite`).
MAX_NAME_LENGTH = 100

# `tf.saved_model.load` finds an export's variables by a file pattern made of
# its path (`<path>/variables/variables*`), in which a backslash escapes and
# `[...]` is a set of characters: under such a folder an export was
# published whole, and then no load found its variables (the next version's
# contract check, `aekeras tflite` and `onnx`, `LocalServer`), each in a
# traceback naming a file that is there.
_PATTERN_CHARACTERS = re.compile(r"\\|\[.+\]")


def check_name(name):
    """Raises ValueError unless `name` can name a folder TF Serving watches, and the files named after it."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(
            f"model name {name!r} must be letters, digits, '-' or '_' (it names a folder TF Serving watches)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"model name of {len(name)} characters is too long: at most {MAX_NAME_LENGTH} (files are named after it)"
        )


def check_loadable_path(path):
    """Raises ModelFileError where TensorFlow could not read a SavedModel back from `path` (a folder above one, or one)."""
    if _PATTERN_CHARACTERS.search(str(path)):
        raise ModelFileError(
            f"{path}: TensorFlow cannot read a SavedModel back from a path holding '\\' or '[...]' (it "
            "finds the variables by a file pattern of the path); use a folder whose path has neither"
        )
