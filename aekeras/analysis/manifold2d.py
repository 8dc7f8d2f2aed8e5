"""Part 10: the lecture's denoising picture, on a curve in the plane."""

import keras
import numpy as np

from aekeras import models
from aekeras.training.callbacks import fit_stopping_at_a_batch


def curve(t):
    """A 1-D curve in the plane, t in [0, 1] -> points in [-0.8, 0.8]^2."""
    x = 1.6 * t - 0.8
    return np.stack([x, 0.5 * np.sin(2.5 * np.pi * t)], axis=-1).astype(np.float32)


def distance_to_curve(points, samples=2000):
    """Euclidean distance from each point to the (densely sampled) curve."""
    on_curve = curve(np.linspace(0, 1, samples))
    return np.min(np.linalg.norm(points[:, None, :] - on_curve[None], axis=-1), axis=1)


def curve_denoising(*, noise_std=0.1, train_points=4000, epochs=100, grid=41, seed=0):
    """Trains a small denoising autoencoder on points of a curve and maps the plane.

    The model (2 -> 64 -> 64 -> 1 -> 64 -> 64 -> 2, tanh) learns to undo
    Gaussian noise added to points of the curve; then every point of a grid
    over [-1, 1]^2 goes through it. Points move towards the curve, the
    farther the more they are off it: the lecture's figure of a denoising
    autoencoder learning the data manifold.

    Returns:
        `{"curve": [m, 2], "inputs": [grid*grid, 2], "outputs": [...],
        "moved": distance each input moved, "input_distance": inputs'
        distance to the curve, "output_distance": outputs' distance}`.
    """
    rng = np.random.default_rng(seed)
    points = curve(rng.uniform(size=train_points))
    # Weights and batch order from `seed` alone, not from what ran before.
    keras.utils.set_random_seed(seed)

    def mlp(sizes, name):
        return keras.Sequential(
            [
                keras.layers.Dense(s, activation="tanh" if i < len(sizes) - 1 else None)
                for i, s in enumerate(sizes)
            ],
            name=name,
        )

    autoencoder = models.Autoencoder(
        mlp((64, 64, 1), "encoder"), mlp((64, 64, 2), "decoder"), value_range=(-1, 1), image_shape=(2,)
    )
    model = models.DenoisingAutoencoder(autoencoder, noise="gaussian", noise_level=noise_std, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    fit_stopping_at_a_batch(model, points, epochs=epochs, batch_size=128, verbose=0)

    axis = np.linspace(-1, 1, grid, dtype=np.float32)
    inputs = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    outputs = model.predict(inputs, batch_size=4096, verbose=0)
    return {
        "curve": curve(np.linspace(0, 1, 400)),
        "inputs": inputs,
        "outputs": outputs,
        "moved": np.linalg.norm(outputs - inputs, axis=1),
        "input_distance": distance_to_curve(inputs),
        "output_distance": distance_to_curve(outputs),
    }
