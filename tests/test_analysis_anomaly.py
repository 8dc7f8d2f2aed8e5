import numpy as np

from aekeras import models
from aekeras.analysis import one_class_anomaly_detection, out_of_distribution
from aekeras.analysis.anomaly import reconstruction_scores


def small_model():
    return models.DenseAutoencoder(latent_dim=16, output_activation="sigmoid", value_range=(0, 1))


def test_one_class_digits(mnist_train_small, mnist_test_arrays):
    images, labels = mnist_train_small
    test_images = mnist_test_arrays[0][:1000]
    result = one_class_anomaly_detection(
        small_model, images, labels, test_images, mnist_test_arrays[1][:1000], epochs=10, digits=[1, 7]
    )
    assert set(result["auroc"]) == {1, 7}
    # Ones are the easiest normal class: far better than chance.
    assert result["auroc"][1] > 90 and all(50 < a <= 100 for a in result["auroc"].values())
    assert result["mean_auroc"] == np.mean(list(result["auroc"].values()))
    assert result["reference_deep_svdd_mean_auroc"] == 94.8


def test_out_of_distribution_of_noise(trained_dense, digits):
    noise = np.random.default_rng(0).uniform(size=digits[:200].shape).astype("float32")
    result = out_of_distribution(trained_dense, digits[:200], noise)
    assert result["auroc"] > 95
    np.testing.assert_allclose(result["in_scores"], reconstruction_scores(trained_dense, digits[:200]))
