import math
import warnings

import keras
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from aekeras import models, plotting
from aekeras.analysis import check_probe_labels, compare_with_pca, principal_angles, tied_linear_subspace


def test_principal_angles_of_exact_and_orthogonal_bases():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(784, 5)))
    mixed = basis @ rng.normal(size=(5, 5))  # same subspace, other basis
    np.testing.assert_allclose(principal_angles(basis, mixed), 0, atol=1e-5)
    other = np.eye(784)[:, :3]
    other_perp = np.eye(784)[:, 3:6]
    np.testing.assert_allclose(principal_angles(other, other_perp), 90)


def test_pca_basis_of_real_digits_against_itself(mnist_train_small):
    flat = mnist_train_small[0].reshape(-1, 784)
    components = PCA(n_components=10).fit(flat).components_
    np.testing.assert_allclose(principal_angles(components.T, components.T), 0, atol=1e-4)


def test_compare_with_pca(mnist_train_small, mnist_test_arrays):
    images, labels = mnist_train_small
    test_images = mnist_test_arrays[0][:1000]
    result = compare_with_pca(
        lambda d: models.DenseAutoencoder(
            latent_dim=d,
            hidden_dims=(128,),
            activation=None,
            output_activation="sigmoid",
            reconstruction_loss="binary_crossentropy",
            value_range=(0, 1),
        ),
        images,
        labels,
        test_images,
        mnist_test_arrays[1][:1000],
        code_sizes=(2, 10),
        epochs=5,
        probe_examples=2000,
    )
    assert result["code_sizes"] == [2, 10]
    # PCA's figures, computed here from the eigenvectors of the centred training images' scatter
    # matrix: the test images' MSE of their reconstructions clipped to [0, 1], and the test
    # accuracy of a logistic regression fitted on the codes of the first 2,000 training images.
    flat, test_flat = images.reshape(len(images), -1).astype(np.float64), test_images.reshape(1000, -1)
    mean = flat.mean(axis=0)
    directions = np.linalg.eigh((flat - mean).T @ (flat - mean))[1][:, ::-1].T  # largest variance first
    for i, size in enumerate((2, 10)):
        basis = directions[:size]
        codes = (test_flat - mean) @ basis.T
        reconstructed = np.clip(codes @ basis + mean, 0, 1)
        assert result["pca"]["mse"][i] == pytest.approx(np.mean((reconstructed - test_flat) ** 2), rel=1e-3)
        probe = LogisticRegression(max_iter=2000).fit((flat[:2000] - mean) @ basis.T, labels[:2000])
        accuracy = probe.score(codes, mnist_test_arrays[1][:1000])
        assert result["pca"]["probe_accuracy"][i] == pytest.approx(accuracy, abs=0.002)
    # The autoencoder's: its codes tell digits apart, the larger far better (seeds 0 to 4: 25-34%
    # at 2 values, 59-68% at 10; after 5 epochs its MSE at 10 is not always below that at 2).
    mse, accuracy = result["autoencoder"]["mse"], result["autoencoder"]["probe_accuracy"]
    assert all(0 < m < 0.12 for m in mse) and 0.15 < accuracy[0] < accuracy[1] - 0.15, result


def test_code_sizes_pca_cannot_have_are_refused_before_training(mnist_train_small, digits):
    images = mnist_train_small[0][:20]
    for sizes in ((2, 21), (0,), (2.5,)):
        with pytest.raises(
            ValueError, match=r"code_sizes must be whole numbers from 1 to 20 \(PCA keeps at most"
        ):
            compare_with_pca(lambda size: None, images, None, digits[:10], None, code_sizes=sizes, epochs=1)


def test_labels_of_one_class_are_refused_before_training(mnist_train_small, digits):
    """A folder with one class folder gives such labels; the probe refused them after every model trained."""
    images, labels = mnist_train_small
    threes = labels == 3
    check_probe_labels(labels)  # two classes or more: nothing to say
    # The probes see the first 10,000: classes past them do not count.
    with pytest.raises(
        ValueError, match=r"the first 5 training labels need two classes or more, got classes \[3\]$"
    ):
        check_probe_labels(np.concatenate([labels[threes][:5], labels]), probe_examples=5)
    with pytest.raises(
        ValueError, match=r"the first 10000 training labels need two classes or more, got classes \[3\]"
    ):
        compare_with_pca(
            lambda size: None,
            images[threes],
            labels[threes],
            digits[:10],
            labels[:10],
            code_sizes=(2,),
            epochs=1,
        )


def test_tied_linear_autoencoder_approaches_the_pca_subspace(mnist_train_small):
    result = tied_linear_subspace(mnist_train_small[0], 4, epochs=15, learning_rate=6e-3)
    assert result["angles"].shape == (4,)
    # Random 4-D subspaces of R^784 sit near 90 degrees from each other. At 3e-3 the slowest
    # direction had not arrived after 15 epochs for every seed (seed 7: 19.8 degrees, seed 2: 9.4);
    # at 6e-3 the largest angle is at most 3.4 degrees over seeds 0 to 31.
    assert np.max(result["angles"]) < 10


def test_tied_linear_subspace_is_seeded(mnist_train_small):
    # The report's figure must not depend on what ran before it.
    images = mnist_train_small[0][:1000]
    first, second = (
        tied_linear_subspace(images, 2, epochs=1, seed=3)["model"].get_weights() for _ in range(2)
    )
    other = tied_linear_subspace(images, 2, epochs=1, seed=4)["model"].get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_conv_autoencoder_beats_pca_on_rgb_patches_with_a_one_value_code(rgb_patches, tmp_path):
    """The lesson's "beating PCA" on natural photographs, where it holds: tiny codes.

    16x16x3 patches of scikit-learn's two photographs, held-out patches
    from the bottom fifth; a strided conv encoder to a 1-value code, trained
    10 epochs in batches of 64 with a warmed-up cosine schedule. Measured
    (README, "Results"): test MSE 0.01642 (seeds 1 and 2: 0.01649, 0.01638)
    against PCA's 0.01783; 20 epochs in batches of 128, twice the time,
    reach 0.01625, and 10 of them 0.01726. With a code of 2 the autoencoder
    is ahead only when trained on four times the patches (0.01221 against
    0.01234), which takes this machine minutes; at codes of 4 and more PCA wins.
    """
    train, test = rgb_patches
    steps = 10 * math.ceil(len(train) / 64)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=2e-3, warmup_steps=steps // 20
    )
    result = compare_with_pca(
        lambda size: models.ConvAutoencoder(
            filters=(32, 64),
            latent_dim=size,
            downsampling="strided",
            activation="elu",
            image_shape=(16, 16, 3),
            reconstruction_loss="mse",
        ),
        train,
        None,
        test,
        None,
        code_sizes=(1,),
        epochs=10,
        batch_size=64,
        learning_rate=schedule,
    )
    pca, autoencoder = result["pca"]["mse"][0], result["autoencoder"]["mse"][0]
    assert autoencoder < 0.95 * pca < 0.05  # 7.5-8.1% ahead with each of three seeds
    # Without labels there is no probe; the figure draws what there is.
    assert result["pca"]["probe_accuracy"] == [] == result["autoencoder"]["probe_accuracy"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty legend warns
        plotting.pca(result, [10.0, 20.0], tmp_path / "pca.png")
    assert (tmp_path / "pca.png").read_bytes()[:4] == b"\x89PNG"


def test_pca_beats_the_conv_autoencoder_on_rgb_crops_at_equal_code_size(rgb_crops):
    """The lesson's "beating PCA" is MNIST's; on natural photographs it does not hold.

    32x32x3 crops of scikit-learn's two photographs, test crops held out from
    the bottom fifth of each: the 16-8-8 convolutional autoencoder's 4x4x8
    code (128 values) against PCA with 128 components. Measured (README,
    "Results"): PCA's test MSE is about half the autoencoder's.
    """
    train, test = (crops.astype(np.float32) / 255 for crops in rgb_crops)
    result = compare_with_pca(
        lambda size: models.ConvAutoencoder(
            filters=(16, 8, 8), image_shape=(32, 32, 3), reconstruction_loss="mse"
        ),
        train,
        None,
        test,
        None,
        code_sizes=(128,),
        epochs=10,
        batch_size=32,
    )
    pca, autoencoder = result["pca"]["mse"][0], result["autoencoder"]["mse"][0]
    assert result["pca"]["probe_accuracy"] == [] and 0 < pca < autoencoder < 0.05
    with pytest.raises(ValueError, match="built for code size 64 has a code of 128 values"):
        compare_with_pca(
            lambda size: models.ConvAutoencoder(image_shape=(32, 32, 3)),
            train,
            None,
            test,
            None,
            code_sizes=(64,),
            epochs=1,
        )
