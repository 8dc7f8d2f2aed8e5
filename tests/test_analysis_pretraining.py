import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from aekeras.analysis import PRETRAINING_METHODS, unlabelled_pretraining
from aekeras.analysis.pretraining import (
    C_CHOICES,
    _network_restarts,
    _restartable,
    _span_coordinates,
    _train_steps,
    classifier,
    epoch_choices,
    labelled_subset,
)


def test_labelled_subsets_hold_each_class_equally_and_differ_by_draw(mnist_train_small):
    labels = mnist_train_small[1]
    rng = np.random.default_rng(0)
    first, second = labelled_subset(labels, 10, rng), labelled_subset(labels, 10, rng)
    for chosen in (first, second):
        assert len(set(chosen)) == 100
        np.testing.assert_array_equal(np.bincount(labels[chosen]), [10] * 10)
    assert set(first) != set(second)


def test_the_pretrained_classifier_starts_from_a_copy_of_the_encoder(
    trained_dense, digits, mnist_test_arrays
):
    before = [w.copy() for w in trained_dense.encoder.get_weights()]
    pretrained = classifier(trained_dense, 10, pretrained=True)
    scratch = classifier(trained_dense, 10, pretrained=False)
    for copied, original in zip(pretrained.layers[0].get_weights(), before, strict=True):
        np.testing.assert_array_equal(copied, original)
    assert not np.allclose(scratch.layers[0].get_weights()[0], before[0])
    scaled = trained_dense.image_spec.to_model_scale(digits[:100])
    pretrained.fit(scaled, mnist_test_arrays[1][:100], epochs=3, verbose=0)
    assert not np.allclose(pretrained.layers[0].get_weights()[0], before[0])  # it trained ...
    for kept, original in zip(trained_dense.encoder.get_weights(), before, strict=True):
        np.testing.assert_array_equal(kept, original)  # ... and the autoencoder did not


def test_a_restarted_classifier_trains_exactly_as_from_its_start(trained_dense, digits, mnist_test_arrays):
    """Cross-validation restarts one compiled classifier per fold: each fold must start afresh."""
    restart = _restartable(trained_dense, 10, pretrained=True)
    scaled, labels = trained_dense.image_spec.to_model_scale(digits[:100]), mnist_test_arrays[1][:100]
    model = restart()
    start = [w.copy() for w in model.get_weights()]
    model.fit(scaled, labels, epochs=5, batch_size=100, verbose=0)
    first = [w.copy() for w in model.get_weights()]
    assert not np.allclose(first[0], start[0])
    model = restart()
    for restored, initial in zip(model.get_weights(), start, strict=True):
        np.testing.assert_array_equal(restored, initial)
    model.fit(scaled, labels, epochs=5, batch_size=100, verbose=0)
    for again, once in zip(model.get_weights(), first, strict=True):
        np.testing.assert_allclose(again, once, rtol=1e-6, atol=1e-7)  # the optimizer restarted too


def test_training_lengths_to_choose_from_halve_down_from_the_most():
    assert epoch_choices(200) == (12, 25, 50, 100, 200)
    assert epoch_choices(20) == (1, 2, 5, 10, 20)
    assert epoch_choices(3) == (1, 3)


def test_an_encoder_pretrained_without_labels_beats_the_same_classifier_from_scratch(
    conv_denoiser_30k, mnist_train_arrays, mnist_test_arrays
):
    """Part 12's headline on a fixed subset: the conv denoiser (2 epochs on 30,000 unlabelled
    training digits), fine-tuned on 100 labelled digits, classifies the first 2,000 test
    digits better than its architecture trained from scratch on the same 100 (mean of three
    draws: 76.0% vs 73.2%), and its frozen codes serve a logistic regression better than
    the pixels do (76.0% vs 70.3%); every setting chosen by 5-fold cross-validation on the
    100 (steps: scratch 100/50/25, fine-tuned 50/100/50 of at most 100; about 25 s alone).
    Seeded, so the same every run; the margins are this seed's, not every seed's (README).
    """
    keras.utils.set_random_seed(0)
    result = unlabelled_pretraining(
        conv_denoiser_30k, *mnist_train_arrays, *(a[:2000] for a in mnist_test_arrays), draws=3, epochs=100
    )
    assert set(result["accuracy"]) == set(PRETRAINING_METHODS) and result["labelled"] == 100
    mean = result["mean"]
    message = {name: np.round(values, 3).tolist() for name, values in result["accuracy"].items()}
    assert mean["fine_tuned"] > mean["scratch"] + 0.01, message
    assert mean["frozen_probe"] > mean["pixels_probe"] + 0.02, message
    assert min(min(values) for values in result["accuracy"].values()) > 0.6, message  # each learned
    assert all(steps in (6, 12, 25, 50, 100) for steps in result["chosen"]["fine_tuned"])
    assert all(c in C_CHOICES for c in result["chosen"]["frozen_probe"])


def test_a_probe_in_the_span_of_its_training_features_is_the_same_probe(mnist_train_small, digits):
    """The probes fit on coordinates in the span of the labelled features: fewer numbers, the same model."""
    train, labels = mnist_train_small[0][:100].reshape(100, -1), mnist_train_small[1][:100]
    test = digits[:500].reshape(500, -1).astype(np.float64)
    train_coordinates, test_coordinates = _span_coordinates(train, test)
    assert train_coordinates.shape[1] <= 100 and test_coordinates.shape == (500, train_coordinates.shape[1])
    # Every inner product with a training image, which is all a linear model's scores see, is kept.
    np.testing.assert_allclose(
        train_coordinates @ train_coordinates.T, train @ train.T.astype(np.float64), atol=1e-6
    )
    np.testing.assert_allclose(
        test_coordinates @ train_coordinates.T, test @ train.T.astype(np.float64), atol=1e-6
    )
    dead = _span_coordinates(np.zeros((100, 64), np.float32), np.ones((5, 64), np.float32))
    assert dead[0].shape == (100, 1) and not dead[0].any()  # a dead code still gives the regression a column
    options = {"C": 0.1, "tol": 1e-10, "max_iter": 10_000}
    on_pixels = LogisticRegression(**options).fit(train.astype(np.float64), labels)
    on_coordinates = LogisticRegression(**options).fit(train_coordinates, labels)
    np.testing.assert_allclose(
        on_coordinates.predict_proba(test_coordinates), on_pixels.predict_proba(test), atol=1e-5
    )


def test_the_traced_step_loop_trains_as_train_on_batch(trained_dense, digits, mnist_test_arrays):
    restart = _restartable(trained_dense, 10, pretrained=True)
    scaled, labels = trained_dense.image_spec.to_model_scale(digits[:100]), mnist_test_arrays[1][:100]
    model = restart()
    for _ in range(4):
        model.train_on_batch(scaled[:80], labels[:80])
    expected = [w.copy() for w in model.get_weights()]
    model = restart()
    _train_steps(model, scaled[:80], labels[:80], 3)
    _train_steps(model, scaled[:80], labels[:80], 1)
    for weights, wanted in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(weights, wanted, rtol=1e-6, atol=1e-7)
    _train_steps(model, scaled, labels, 0)  # no steps: nothing moves, any batch size
    for weights, wanted in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(weights, wanted)


def test_each_draw_restarts_the_same_networks_from_weights_drawn_with_its_seed(trained_dense):
    restarts_for_draw = _network_restarts(trained_dense, 10)
    keras.utils.set_random_seed(0)
    first = restarts_for_draw()
    keras.utils.set_random_seed(1)
    second = restarts_for_draw()
    scratch_first = [w.copy() for w in first["scratch"]().get_weights()]
    model = second["scratch"]()
    assert first["scratch"]() is model  # one compiled classifier serves every draw
    assert not np.allclose(second["scratch"]().get_weights()[0], scratch_first[0])  # a new start each draw
    keras.utils.set_random_seed(0)
    for again, wanted in zip(restarts_for_draw()["scratch"]().get_weights(), scratch_first, strict=True):
        np.testing.assert_array_equal(again, wanted)  # drawn with the draw's seed
    fine_tuned = second["fine_tuned"]()
    for copied, original in zip(
        fine_tuned.layers[0].get_weights(), trained_dense.encoder.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(copied, original)


def test_missing_labels_or_too_few_images_of_a_class_are_said_before_any_training(
    trained_dense, mnist_train_small
):
    images, labels = mnist_train_small
    with pytest.raises(ValueError, match="needs the labels of the training and test images"):
        unlabelled_pretraining(trained_dense, images, None, images[:10], labels[:10])
    few = np.concatenate([np.flatnonzero(labels != 3), np.flatnonzero(labels == 3)[:4]])
    with pytest.raises(ValueError, match="class 3 has 4 training images, fewer than per_class 10"):
        unlabelled_pretraining(trained_dense, images[few], labels[few], images[:10], labels[:10])
    # One class: the logistic regressions refused it after the draw's networks had trained.
    threes = labels == 3
    with pytest.raises(ValueError, match=r"the training images need two classes or more, got classes \[3\]"):
        unlabelled_pretraining(trained_dense, images[threes], labels[threes], images[:10], labels[:10])
