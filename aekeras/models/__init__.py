"""Autoencoder models, all trained with `compile(optimizer=...)` and `fit`."""

from aekeras.models.autoencoder import Autoencoder
from aekeras.models.base_autoencoder import BaseAutoencoder
from aekeras.models.dense_autoencoder import DenseAutoencoder

__all__ = ["Autoencoder", "BaseAutoencoder", "DenseAutoencoder"]
