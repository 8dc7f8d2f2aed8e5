import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture

import aekeras
from aekeras import models, presets
from aekeras.analysis import one_class_anomaly_detection, out_of_distribution
from aekeras.analysis.anomaly import (
    REFERENCE_MEAN_AUROC,
    SCORES,
    LatentDensity,
    OneClassScores,
    reconstruction_scores,
    relative_reconstruction_scores,
)


@pytest.fixture(scope="module")
def hard_digits(mnist_dir, mnist_test_arrays):
    """Normal digits 2 and 8, where the lecture's score does worst, on 2,000 test images."""
    train_images, train_labels = aekeras.data.load_arrays("mnist", "train", data_dir=mnist_dir)
    test_images, test_labels = (a[:2000] for a in mnist_test_arrays)
    return one_class_anomaly_detection(
        presets.one_class, train_images, train_labels, test_images, test_labels, epochs=10, digits=[2, 8]
    )


def test_one_class_result_says_what_it_measured(hard_digits):
    assert set(hard_digits["auroc"]) == set(hard_digits["mean_auroc"]) == set(SCORES)
    for name in SCORES:
        assert set(hard_digits["auroc"][name]) == {2, 8}
        assert hard_digits["mean_auroc"][name] == pytest.approx(
            np.mean(list(hard_digits["auroc"][name].values()))
        )
    # A tenth of each digit's training images is held out (MNIST: 5,958 twos, 5,851 eights).
    assert hard_digits["validation_images"] == {2: 596, 8: 585}
    assert hard_digits["train_images"] == {2: 5958 - 596, 8: 5851 - 585}
    assert hard_digits["reference_mean_auroc"] == REFERENCE_MEAN_AUROC
    assert REFERENCE_MEAN_AUROC["OCGAN (Perera et al., 2019)"] == 97.5


def test_combined_score_beats_each_of_its_parts_and_the_lecture_score(hard_digits):
    # The report's headline: on the digits where reconstruction MSE does worst,
    # relative error and latent density together rank anomalies best.
    auroc = hard_digits["auroc"]
    for digit in (2, 8):
        parts = [
            auroc[name][digit] for name in ("reconstruction", "relative_reconstruction", "latent_density")
        ]
        assert auroc["combined"][digit] > max(parts) + 1.0, (digit, auroc)
    assert auroc["relative_reconstruction"][8] > auroc["reconstruction"][8] + 1.0


def test_relative_error_is_mse_over_the_images_mean_square(trained_dense, digits):
    images = np.concatenate([digits[:20], np.zeros_like(digits[:1])])
    relative = relative_reconstruction_scores(trained_dense, images)
    plain = reconstruction_scores(trained_dense, images)
    energy = np.mean(np.square(images[:20].reshape(20, -1)), axis=1)
    np.testing.assert_allclose(relative[:20], plain[:20] / energy, rtol=1e-6)
    assert np.isfinite(relative[20]) and relative[20] > relative[:20].max()  # a blank image


def test_latent_density_chooses_its_size_on_held_out_codes():
    # Three real digit classes of scikit-learn's 8x8 set, as 2-D principal
    # components: one Gaussian describes them worse than three on images the
    # mixture did not see.
    images, labels = load_digits(return_X_y=True)
    codes = PCA(2, random_state=0).fit_transform(images[np.isin(labels, [0, 1, 7])])
    fitted, held_out = codes[::2], codes[1::2]
    density = LatentDensity(fitted, held_out, components=(1, 3))
    single = GaussianMixture(1, covariance_type="full", random_state=0).fit(fitted)
    assert density.components == 3
    assert -density.scores(held_out).mean() > single.score(held_out) + 0.1
    # Mixtures larger than the data are not tried.
    assert LatentDensity(fitted[:2], held_out, components=(1, 3)).components == 1


def test_one_class_scores_need_held_out_images_to_standardise_on(trained_dense, digits):
    with pytest.raises(ValueError, match="at least 2 held-out normal images .* got 1"):
        OneClassScores(trained_dense, digits[:100], digits[100:101])
    with pytest.raises(ValueError, match=r"no Gaussian mixture of \(4,\) components fits these 3 codes"):
        LatentDensity(np.zeros((3, 2)), np.zeros((3, 2)), components=(4,))


def test_out_of_distribution_of_noise(trained_dense, digits):
    noise = np.random.default_rng(0).uniform(size=digits[:200].shape).astype("float32")
    result = out_of_distribution(trained_dense, digits[:200], noise)
    assert result["auroc"] > 95
    np.testing.assert_allclose(result["in_scores"], reconstruction_scores(trained_dense, digits[:200]))


def test_small_models_train_on_one_digit(mnist_train_small, mnist_test_arrays):
    def small_model():
        return models.DenseAutoencoder(latent_dim=16, output_activation="sigmoid", value_range=(0, 1))

    images, labels = mnist_train_small
    result = one_class_anomaly_detection(
        small_model,
        images,
        labels,
        mnist_test_arrays[0][:1000],
        mnist_test_arrays[1][:1000],
        epochs=10,
        digits=[1],
    )
    # Ones are the easiest normal class: far better than chance by reconstruction error.
    assert result["auroc"]["reconstruction"][1] > 90 and set(result["auroc"]) == set(SCORES)


def test_one_class_scores_on_8x8_digits():
    # scikit-learn's real 8x8 digits: a model of zeros, trained on half of
    # them, ranks the other digits above the held-out half's zeros.
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    zeros = images[labels == 0]
    train, held_out, test = zeros[::2], zeros[1::4], np.concatenate([zeros[3::4], images[labels != 0][:500]])
    keras.utils.set_random_seed(0)
    model = models.DenseAutoencoder(
        image_shape=(8, 8, 1), latent_dim=4, output_activation="sigmoid", value_range=(0, 1)
    )
    model.compile(optimizer="adam")
    model.fit(train, epochs=100, batch_size=16, verbose=0)
    scores = OneClassScores(model, train, held_out)(test)
    anomalies = np.arange(len(test)) >= len(zeros[3::4])
    assert set(scores) == set(SCORES) and all(len(v) == len(test) for v in scores.values())
    assert roc_auc_score(anomalies, scores["combined"]) > 0.9


def test_one_class_detection_runs_the_classes_present_and_says_what_it_lacks():
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    two_classes = labels < 2

    def small_model():
        return models.DenseAutoencoder(
            image_shape=(8, 8, 1), latent_dim=4, output_activation="sigmoid", value_range=(0, 1)
        )

    result = one_class_anomaly_detection(
        small_model, images[two_classes], labels[two_classes], images[:200], labels[:200], epochs=1
    )
    assert set(result["auroc"]["reconstruction"]) == {0, 1}  # not ten classes
    with pytest.raises(ValueError, match=r"no training images of class 5 \(the classes present: \[0, 1\]\)"):
        one_class_anomaly_detection(
            small_model, images[two_classes], labels[two_classes], images, labels, epochs=1, digits=[5]
        )
    with pytest.raises(ValueError, match="needs the labels of the training and test images"):
        one_class_anomaly_detection(small_model, images, None, images, labels, epochs=1)
    # Test images of one class only, or none of it, gave NaN AUROCs after training.
    only_ones = labels == 1
    with pytest.raises(
        ValueError, match=r"the test images must hold class 0 and other classes.* hold: \[1\]\)"
    ):
        one_class_anomaly_detection(
            small_model,
            images[two_classes],
            labels[two_classes],
            images[only_ones],
            labels[only_ones],
            epochs=1,
        )
    model = small_model()
    with pytest.raises(ValueError, match="relative_reconstruction scores do not vary"):
        OneClassScores(model, images[:100], np.repeat(images[:1], 5, axis=0))


def test_relative_scores_take_large_images_a_few_at_a_time(digits, monkeypatch):
    """They passed 1,000 on to `reconstruct`, as all its callers did before it chose by image size."""
    import aekeras.models.base

    monkeypatch.setattr(aekeras.models.base, "BATCH_VALUES", 4 * digits[0].size)
    model = models.DenseAutoencoder(latent_dim=2)
    sizes, call_inputs = [], model.call_inputs

    def spy(batch, **conditions):
        sizes.append(len(batch))
        return call_inputs(batch, **conditions)

    monkeypatch.setattr(model, "call_inputs", spy)
    relative_reconstruction_scores(model, digits[:10])
    assert sizes == [4, 4, 2]


def test_one_class_labels_that_cannot_serve_are_refused_in_words_before_any_model_trains():
    """Each of these stopped the report's part 6 in a traceback, some after training a model per class."""
    from aekeras.analysis import check_one_class_labels

    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    train, test = labels[:1500], labels[1500:]
    assert check_one_class_labels(train, test) == list(range(10))
    only_zeros = labels == 0
    with pytest.raises(
        ValueError, match=r"must hold class 0 and other classes.*\(the classes they hold: \[0\]\)"
    ):
        check_one_class_labels(labels[only_zeros], labels[only_zeros])
    no_nines = test[test != 9]
    with pytest.raises(
        ValueError, match=r"must hold class 9 and other classes.* hold: \[0, 1, 2, 3, 4, 5, 6, 7, 8\]\)"
    ):
        check_one_class_labels(train, no_nines)
    # 14 threes: a tenth held out rounds to 1, and OneClassScores standardises on 2 or more.
    few_threes = np.concatenate([train[train != 3], np.full(14, 3)])
    reason = (
        "class 3 has 14 training images: holding out 0.1 of them keeps 1 to standardise the one-class scores "
        "on and 13 to train on, where 2 or more and 1 or more are needed"
    )
    with pytest.raises(ValueError) as caught:
        check_one_class_labels(few_threes, test)
    assert str(caught.value) == reason
    assert check_one_class_labels(np.concatenate([few_threes, [3]]), test) == list(
        range(10)
    )  # 15: 2 held out

    def never_built():
        raise AssertionError("a model was built for labels that cannot serve")

    keep = np.concatenate([np.flatnonzero(labels[:1500] != 3), np.flatnonzero(labels[:1500] == 3)[:14]])
    with pytest.raises(ValueError) as caught:
        one_class_anomaly_detection(never_built, images[keep], labels[keep], images[1500:], test, epochs=1)
    assert str(caught.value) == reason
