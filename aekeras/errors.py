"""The errors aekeras reports to users in one line, importable without TensorFlow.

The command line prints their message and exits with status 2.
"""


class DataError(ValueError):
    """A data source is missing, malformed or inconsistent.

    The message names the file or folder and what was expected.
    """


class ModelFileError(ValueError):
    """A file that is not a loadable aekeras model."""
