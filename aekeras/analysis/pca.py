"""Part 7: autoencoders against PCA, and the tied linear autoencoder's subspace."""

import keras
import numpy as np
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from aekeras import models


def _flat(images):
    return images.reshape(len(images), -1)


def _probe_accuracy(train_codes, train_labels, test_codes, test_labels, seed):
    """Test accuracy of a logistic-regression probe trained on the codes."""
    probe = LogisticRegression(max_iter=2000, random_state=seed)
    probe.fit(train_codes, train_labels)
    return float(probe.score(test_codes, test_labels))


def compare_with_pca(
    build_autoencoder, train_images, train_labels, test_images, test_labels, *, code_sizes=(2, 10, 30),
    epochs, batch_size=256, probe_examples=10000, seed=0, progress=None,
):
    """Test reconstruction MSE and probe accuracy of PCA and autoencoders per code size.

    Args:
        build_autoencoder: callable `code_size -> aekeras autoencoder`.
        train_images, train_labels, test_images, test_labels: MNIST arrays,
            images `[n, 28, 28, 1]` on [0, 1].
        code_sizes: the code sizes compared.
        epochs, batch_size: training of each autoencoder.
        probe_examples: training codes the logistic-regression probe sees.
        seed: seed of the probe.
        progress: optional callable taking a message.

    Returns:
        `{"code_sizes": [...], "pca": {"mse": [...], "probe_accuracy": [...]},
        "autoencoder": {...}}`, MSE on the [0, 1] scale.
    """
    result = {"code_sizes": list(code_sizes), "pca": {"mse": [], "probe_accuracy": []},
              "autoencoder": {"mse": [], "probe_accuracy": []}}
    probe_labels = train_labels[:probe_examples]
    for size in code_sizes:
        if progress:
            progress(f"PCA and autoencoder with a code of {size}")
        pca = PCA(n_components=size, random_state=seed).fit(_flat(train_images))
        test_codes = pca.transform(_flat(test_images))
        result["pca"]["mse"].append(
            float(np.mean(np.square(pca.inverse_transform(test_codes) - _flat(test_images))))
        )
        result["pca"]["probe_accuracy"].append(_probe_accuracy(
            pca.transform(_flat(train_images[:probe_examples])), probe_labels, test_codes, test_labels, seed
        ))

        model = build_autoencoder(size)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        low, high = model.value_range
        model.fit(train_images * (high - low) + low, epochs=epochs, batch_size=batch_size, verbose=0)
        outputs = (model.predict(test_images * (high - low) + low, batch_size=1000, verbose=0) - low) / (high - low)
        result["autoencoder"]["mse"].append(float(np.mean(np.square(outputs - test_images))))
        train_codes = np.asarray(model.encode(train_images[:probe_examples] * (high - low) + low))
        codes = np.asarray(model.encode(test_images * (high - low) + low))
        result["autoencoder"]["probe_accuracy"].append(
            _probe_accuracy(_flat(train_codes), probe_labels, _flat(codes), test_labels, seed)
        )
    return result


def principal_angles(basis_a, basis_b):
    """Principal angles in degrees between the column spaces of two matrices."""
    return np.degrees(subspace_angles(np.asarray(basis_a, np.float64), np.asarray(basis_b, np.float64)))


def tied_linear_subspace(train_images, code_size, *, epochs, batch_size=256, learning_rate=1e-3):
    """Trains a tied-weight linear autoencoder and compares its subspace with PCA's.

    With linear activations and decoder = encoder transposed, the minimum
    of the squared error is reached when the encoder's columns span the top
    principal subspace of the data, the lecture's link to PCA. The model
    trains on centred images, as PCA works on them; uncentred, the large
    mean direction holds one column back for many epochs.

    Returns:
        `{"angles": degrees, sorted largest first, "model": the trained
        model, "components": the top-`code_size` principal directions}`.
    """
    model = models.DenseAutoencoder(
        latent_dim=code_size, activation=None, output_activation=None, tied_weights=True,
        value_range=(0, 1),
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    centred = train_images - train_images.mean(axis=0)
    model.fit(centred, epochs=epochs, batch_size=batch_size, verbose=0)
    components = PCA(n_components=code_size).fit(_flat(train_images)).components_
    kernel = model.encoder.layers[-1].kernel.numpy()  # [784, code_size]
    return {"angles": principal_angles(kernel, components.T), "model": model, "components": components}
