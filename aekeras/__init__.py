"""aekeras: autoencoders for Keras 3 on TensorFlow.

Submodules load when first used, so that `import aekeras` (and the command
line's `--help`) does not start TensorFlow.
"""

import importlib
import os

# Keras reads its backend when first imported; this library is TensorFlow-only.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
_SUBMODULES = (
    "analysis",
    "callbacks",
    "data",
    "export",
    "losses",
    "models",
    "noise",
    "onnx",
    "optimizers",
    "plotting",
    "presets",
    "registry",
    "report",
    "serving",
    "signatures",
    "tflite",
    "training",
)
__all__ = [*_SUBMODULES, "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"aekeras.{name}")
    raise AttributeError(f"module 'aekeras' has no attribute {name!r}")


def __dir__():
    # The submodules, unloaded, for dir(), tab completion and help().
    return sorted({*globals(), *__all__})
