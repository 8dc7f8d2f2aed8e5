"""aekeras: autoencoders for Keras 3 on TensorFlow."""

import os

# Keras reads its backend when first imported; this library is TensorFlow-only.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from aekeras import data, losses, models  # noqa: E402

__version__ = "0.1.0"
__all__ = ["data", "losses", "models", "__version__"]
