"""Autoencoder models, all trained with `compile(optimizer=...)` and `fit`.

Importing this package registers every class with Keras, so that
`keras.models.load_model` can load aekeras models. `blocks` holds the
encoder and decoder builders every model shares; `aekeras.registry` names
the models the command line builds, and `aekeras.presets` the lectures'
setups.
"""

import keras

# The models are TensorFlow code (tf.function steps, tf.data, SavedModels):
# under Keras's JAX or PyTorch backend, chosen by KERAS_BACKEND or
# keras.json before `import aekeras` could choose, `compile` failed later
# in an AttributeError from deep inside PyTorch's modules.
if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"aekeras runs on Keras's TensorFlow backend, not on {keras.backend.backend()!r} "
        "(set by KERAS_BACKEND or keras.json): set KERAS_BACKEND=tensorflow before Keras is imported"
    )

from aekeras.models.autoencoder import Autoencoder
from aekeras.models.base import BaseAutoencoder
from aekeras.models.contractive import ContractiveAutoencoder
from aekeras.models.conv import ConvAutoencoder
from aekeras.models.cvae import ConditionalVAE
from aekeras.models.denoising import DenoisingAutoencoder
from aekeras.models.dense import DenseAutoencoder
from aekeras.models.iwae import IWAE
from aekeras.models.keras_saving import cache_attribute_skipsets
from aekeras.models.loading import ModelFileError, load_model
from aekeras.models.vae import VAE
from aekeras.models.vqvae import VQVAE, VectorQuantizer
from aekeras.models.wrapped import WrappedAutoencoder

# Every save of a model in the process (the checkpoint and backup of each
# epoch among them) would otherwise keep some memory for good.
cache_attribute_skipsets()

__all__ = [
    "Autoencoder",
    "BaseAutoencoder",
    "ConditionalVAE",
    "ContractiveAutoencoder",
    "ConvAutoencoder",
    "DenoisingAutoencoder",
    "DenseAutoencoder",
    "IWAE",
    "ModelFileError",
    "VAE",
    "VQVAE",
    "VectorQuantizer",
    "WrappedAutoencoder",
    "load_model",
]
