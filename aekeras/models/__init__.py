"""Autoencoder models, all trained with `compile(optimizer=...)` and `fit`."""

from aekeras.models.autoencoder import Autoencoder
from aekeras.models.base_autoencoder import BaseAutoencoder
from aekeras.models.contractive_autoencoder import ContractiveAutoencoder
from aekeras.models.conv_autoencoder import ConvAutoencoder
from aekeras.models.dense_autoencoder import DenseAutoencoder
from aekeras.models.denoising_autoencoder import DenoisingAutoencoder
from aekeras.models.vae import VAE
from aekeras.models.wrapped_autoencoder import WrappedAutoencoder

__all__ = [
    "Autoencoder",
    "BaseAutoencoder",
    "ContractiveAutoencoder",
    "ConvAutoencoder",
    "DenoisingAutoencoder",
    "DenseAutoencoder",
    "VAE",
    "WrappedAutoencoder",
]
