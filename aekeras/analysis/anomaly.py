"""Part 6: anomaly detection by reconstruction error."""

import keras
import numpy as np
from sklearn.metrics import roc_auc_score

from aekeras.analysis.metrics import mse

# Ruff et al., "Deep One-Class Classification" (ICML 2018), one-class Deep
# SVDD on MNIST: mean AUROC over the ten digits, in percent.
DEEP_SVDD_MEAN_AUROC = 94.8


def reconstruction_scores(model, images, batch_size=1000):
    """Per-image mean squared reconstruction error on the [0, 1] scale."""
    return mse(model.reconstruct(images, batch_size), images)


def one_class_anomaly_detection(
    build_model,
    train_images,
    train_labels,
    test_images,
    test_labels,
    *,
    epochs,
    batch_size=128,
    learning_rate=1e-3,
    digits=range(10),
    seed=0,
    progress=None,
):
    """One model per digit, trained on that digit only, scores every test image.

    For digit d the test images of d are normal and all others anomalies;
    the score is the reconstruction error, and the AUROC
    (`sklearn.metrics.roc_auc_score`, in percent) says how well it ranks
    anomalies above normal images.

    Args:
        build_model: callable returning a fresh aekeras autoencoder.
        train_images, train_labels, test_images, test_labels: labelled
            images on [0, 1] of the model's shape.
        epochs, batch_size, learning_rate: training of each model.
        digits: which digits to run.
        seed: seeds each model's weights and data order (with its digit),
            so the figures do not depend on what ran before.
        progress: optional callable taking a message.

    Returns:
        `{"auroc": {digit: percent}, "mean_auroc": percent,
        "reference_deep_svdd_mean_auroc": 94.8}`.
    """
    auroc = {}
    for digit in digits:
        if progress:
            progress(f"one-class model for digit {digit}")
        keras.utils.set_random_seed(seed + int(digit))
        model = build_model()
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
        normal = train_images[train_labels == digit]
        model.fit(model.image_spec.to_model_scale(normal), epochs=epochs, batch_size=batch_size, verbose=0)
        scores = reconstruction_scores(model, test_images)
        auroc[int(digit)] = 100.0 * roc_auc_score(test_labels != digit, scores)
    return {
        "auroc": auroc,
        "mean_auroc": float(np.mean(list(auroc.values()))),
        "reference_deep_svdd_mean_auroc": DEEP_SVDD_MEAN_AUROC,
    }


def out_of_distribution(model, in_images, out_images):
    """AUROC (percent) of reconstruction error separating out- from in-distribution images."""
    in_scores = reconstruction_scores(model, in_images)
    out_scores = reconstruction_scores(model, out_images)
    labels = np.concatenate([np.zeros(len(in_scores)), np.ones(len(out_scores))])
    auroc = 100.0 * roc_auc_score(labels, np.concatenate([in_scores, out_scores]))
    return {"auroc": float(auroc), "in_scores": in_scores, "out_scores": out_scores}
