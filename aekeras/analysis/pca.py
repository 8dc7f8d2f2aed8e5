"""Part 7: autoencoders against PCA, and the tied linear autoencoder's subspace."""

import keras
import numpy as np
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from aekeras import models
from aekeras.analysis.metrics import mse
from aekeras.training.callbacks import fit_stopping_at_a_batch

# Training codes (and labels) the logistic-regression probes learn from.
PROBE_EXAMPLES = 10000


def _flat(images):
    return images.reshape(len(images), -1)


def pca_reconstruct(pca, images):
    """A fitted PCA's reconstructions of [0, 1] images, clipped to [0, 1] as the models' are."""
    return np.clip(pca.inverse_transform(pca.transform(_flat(images))), 0.0, 1.0).reshape(images.shape)


def _probe_accuracy(train_codes, train_labels, test_codes, test_labels, seed):
    """Test accuracy of a logistic-regression probe trained on the codes."""
    probe = LogisticRegression(max_iter=2000, random_state=seed)
    probe.fit(train_codes, train_labels)
    return float(probe.score(test_codes, test_labels))


def _code_size(model):
    return int(np.prod(model.code_shape((None, *model.image_shape))[1:]))


def _trained(build_autoencoder, size, train_images, epochs, batch_size, seed, learning_rate):
    """The autoencoder for a code of `size` values, trained with `seed`."""
    keras.utils.set_random_seed(seed)
    model = build_autoencoder(size)
    if _code_size(model) != size:
        raise ValueError(
            f"the autoencoder built for code size {size} has a code of {_code_size(model)} values"
        )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    fit_stopping_at_a_batch(
        model, model.image_spec.to_model_scale(train_images), epochs=epochs, batch_size=batch_size, verbose=0
    )
    return model


def compare_with_pca(
    build_autoencoder,
    train_images,
    train_labels,
    test_images,
    test_labels,
    *,
    code_sizes=(2, 10, 30),
    epochs,
    batch_size=256,
    learning_rate=1e-3,
    probe_examples=PROBE_EXAMPLES,
    seed=0,
    progress=None,
):
    """Test reconstruction MSE (and probe accuracy) of PCA and autoencoders per code size.

    Args:
        build_autoencoder: callable `code_size -> aekeras autoencoder` whose
            code has exactly `code_size` values (a vector, or a spatial code).
        train_images, test_images: images on [0, 1], any shape.
        train_labels, test_labels: labels, or None to skip the probes.
        code_sizes: the code sizes compared.
        epochs, batch_size: training of each autoencoder.
        learning_rate: Adam's, a number or a `keras.optimizers.schedules`
            schedule.
        probe_examples: training codes the logistic-regression probe sees.
        seed: seeds each autoencoder's weights, its data order, and the probe.
        progress: optional callable taking a message.

    Returns:
        `{"code_sizes": [...], "pca": {"mse": [...], "probe_accuracy": [...]},
        "autoencoder": {...}}`, MSE on the [0, 1] scale (PCA's
        reconstructions clipped to [0, 1], as the models' are); no probe
        accuracies without labels.
    """
    most = min(len(train_images), int(np.prod(np.shape(train_images)[1:])))
    if not all(isinstance(size, (int, np.integer)) and 1 <= size <= most for size in code_sizes):
        raise ValueError(
            f"code_sizes must be whole numbers from 1 to {most} (PCA keeps at most as many components as "
            f"there are training images or values per image), got {list(code_sizes)}"
        )
    labels = _probe_labels(train_labels, test_labels, probe_examples)
    result = {
        "code_sizes": list(code_sizes),
        "pca": {"mse": [], "probe_accuracy": []},
        "autoencoder": {"mse": [], "probe_accuracy": []},
    }
    for size in code_sizes:
        if progress:
            progress(f"PCA and autoencoder with a code of {size}")
        pca = PCA(n_components=size, random_state=seed).fit(_flat(train_images))
        model = _trained(build_autoencoder, size, train_images, epochs, batch_size, seed, learning_rate)
        for method, (error, accuracy) in _measured(
            pca, model, train_images, test_images, labels, probe_examples, seed
        ):
            result[method]["mse"].append(error)
            if accuracy is not None:
                result[method]["probe_accuracy"].append(accuracy)
    return result


def check_probe_labels(train_labels, probe_examples=PROBE_EXAMPLES):
    """ValueError, in words, unless the probe's training labels (the first `probe_examples`) hold two classes or more."""
    classes = np.unique(train_labels[:probe_examples]).tolist()
    if len(classes) < 2:  # scikit-learn refused only after every autoencoder had trained
        raise ValueError(
            f"the probes tell classes apart: the first {probe_examples} training labels need two classes or "
            f"more, got classes {classes}"
        )


def _probe_labels(train_labels, test_labels, probe_examples):
    """`(train_labels, test_labels)`, None without both; ValueError unless the probe's hold two classes or more."""
    if train_labels is None or test_labels is None:
        return None
    try:
        check_probe_labels(train_labels, probe_examples)
    except ValueError as e:
        raise ValueError(f"{e} (pass None labels to compare reconstructions alone)") from None
    return train_labels, test_labels


def _measured(pca, model, train_images, test_images, labels, probe_examples, seed):
    """`(method, (test MSE, probe accuracy or None))` for the fitted PCA and the trained autoencoder."""
    probe = None
    if labels is not None:
        probe = (train_images[:probe_examples], labels[0][:probe_examples], test_images, labels[1], seed)
    methods = (
        ("pca", lambda x: pca_reconstruct(pca, x), pca.transform),
        ("autoencoder", model.reconstruct, lambda x: _flat(model.embed(x.reshape(-1, *model.image_shape)))),
    )
    for method, reconstruct, codes_of in methods:
        error = float(np.mean(mse(reconstruct(test_images), test_images)))
        yield method, (error, None if probe is None else _probe(codes_of, *probe))


def _probe(codes_of, train_images, train_labels, test_images, test_labels, seed):
    """Test accuracy of a logistic-regression probe on the codes `codes_of(flat images)` gives."""
    return _probe_accuracy(
        codes_of(_flat(train_images)), train_labels, codes_of(_flat(test_images)), test_labels, seed
    )


def principal_angles(basis_a, basis_b):
    """Principal angles in degrees between the column spaces of two matrices."""
    return np.degrees(subspace_angles(np.asarray(basis_a, np.float64), np.asarray(basis_b, np.float64)))


def tied_linear_subspace(train_images, code_size, *, epochs, batch_size=256, learning_rate=1e-3, seed=0):
    """Trains a tied-weight linear autoencoder and compares its subspace with PCA's.

    With linear activations and decoder = encoder transposed, the minimum
    of the squared error is reached when the encoder's columns span the top
    principal subspace of the data, the lecture's link to PCA. The model
    trains on centred images, as PCA works on them; uncentred, the large
    mean direction holds one column back for many epochs.

    `seed` seeds the weights and the data order.

    Returns:
        `{"angles": degrees, sorted largest first, "model": the trained
        model, "components": the top-`code_size` principal directions}`.
    """
    keras.utils.set_random_seed(seed)
    model = models.DenseAutoencoder(
        latent_dim=code_size,
        activation=None,
        output_activation=None,
        tied_weights=True,
        value_range=(0, 1),
        image_shape=train_images.shape[1:],
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    centred = train_images - train_images.mean(axis=0)
    fit_stopping_at_a_batch(model, centred, epochs=epochs, batch_size=batch_size, verbose=0)
    components = PCA(n_components=code_size, random_state=seed).fit(_flat(train_images)).components_
    kernel = model.encoder.layers[-1].kernel.numpy()  # [pixels, code_size]
    return {"angles": principal_angles(kernel, components.T), "model": model, "components": components}
