"""Part 12: autoencoders learn from unlabelled data, measured with 100 labels."""

import functools
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

from aekeras.models import blocks

METHODS = {
    "scratch": "encoder + softmax, from scratch",
    "fine_tuned": "encoder + softmax, pretrained, fine-tuned",
    "frozen_probe": "pretrained codes + logistic regression",
    "pixels_probe": "pixels + logistic regression",
}
# Every setting is chosen by cross-validation on the labelled images alone,
# in this many stratified folds; the test images are only scored.
FOLDS = 5
# The logistic regressions' inverse regularisation strengths to choose from.
C_CHOICES = tuple(float(c) for c in np.logspace(-3, 2, 6))


def epoch_choices(most):
    """Training lengths to choose from: `most` full-batch steps and its halvings, down to 1/16."""
    return tuple(sorted({max(1, most // 2**k) for k in range(5)}))


def _folds(labels, seed):
    return list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))


def labelled_subset(labels, per_class, rng):
    """Indices of `per_class` examples of each class, drawn without replacement."""
    return np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in np.unique(labels)]
    )


def classifier(autoencoder, num_classes, pretrained):
    """The autoencoder's encoder architecture with a softmax layer on its flattened code.

    `pretrained`: start from the autoencoder's trained encoder weights (a
    copy: the autoencoder is left as it is); else from a fresh initialisation.
    """
    encoder = keras.models.clone_model(autoencoder.encoder)
    encoder.build((None, *autoencoder.image_shape))
    if pretrained:
        encoder.set_weights(autoencoder.encoder.get_weights())
    model = keras.Sequential(
        [
            keras.Input(autoencoder.image_shape),
            encoder,
            blocks.flatten(),
            keras.layers.Dense(num_classes),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _restartable(autoencoder, num_classes, pretrained):
    """A function returning one compiled `classifier`, put back to a start (weights and optimizer).

    `restart(start=None)`: the classifier with the weights `start` (by
    default its own first ones) and its optimizer as new. Restarting one
    model for every fold and draw, rather than building another, keeps
    Keras's traced functions instead of tracing them again (and TensorFlow
    warning of it) each time.
    """
    model = classifier(autoencoder, num_classes, pretrained)
    model.optimizer.build(model.trainable_variables)
    first, state = model.get_weights(), [v.numpy() for v in model.optimizer.variables]

    def restart(start=None):
        model.set_weights(first if start is None else start)
        for variable, value in zip(model.optimizer.variables, state, strict=True):
            variable.assign(value)
        return model

    return restart


# The networks of `METHODS`, and whether each starts from the autoencoder's encoder weights.
_NETWORKS = {"scratch": False, "fine_tuned": True}


def _network_restarts(autoencoder, num_classes):
    """A function giving each draw the networks' restart functions (see `_restartable`), from a fresh start.

    One compiled classifier per network serves every fold and draw; each
    call draws new start weights with the current seed (a new
    initialisation; the fine-tuned network's encoder is the autoencoder's).
    """
    restartable = {
        name: _restartable(autoencoder, num_classes, pretrained) for name, pretrained in _NETWORKS.items()
    }

    def for_draw():
        return {
            name: functools.partial(
                restart, classifier(autoencoder, num_classes, _NETWORKS[name]).get_weights()
            )
            for name, restart in restartable.items()
        }

    return for_draw


# Each classifier's training loop, traced once (weakly keyed: it goes with its model).
_STEP_LOOPS = weakref.WeakKeyDictionary()


def _step_loop(model):
    """A traced function running `steps` of `model.train_step` on one batch, for any batch size."""
    if model not in _STEP_LOOPS:

        def run(images, labels, steps):
            for _ in tf.range(steps):
                model.train_step((images, labels))

        _STEP_LOOPS[model] = tf.function(
            run,
            input_signature=(
                tf.TensorSpec((None, *model.input_shape[1:]), tf.float32),
                tf.TensorSpec((None,), tf.int32),
                tf.TensorSpec((), tf.int32),
            ),
        )
    return _STEP_LOOPS[model]


def _train_steps(model, images, labels, steps):
    """`steps` full-batch Adam steps, all in one call.

    The same weights as `steps` calls of `train_on_batch`, which took 1.5x
    as long on 80 digits (its own call per step).
    """
    _step_loop(model)(tf.constant(images, tf.float32), tf.constant(labels, tf.int32), tf.constant(steps))


def chosen_epochs(restart, scaled, labels, choices, folds):
    """The training length (of `choices`) with the best accuracy over `folds`; the shortest on ties."""
    correct = np.zeros(len(choices))
    for train, held_out in folds:
        model, done = restart(), 0
        for i, steps in enumerate(choices):
            _train_steps(model, scaled[train], labels[train], steps - done)
            done = steps
            predicted = np.argmax(model.predict_on_batch(scaled[held_out]), axis=-1)
            correct[i] += np.sum(predicted == labels[held_out])
    return choices[int(np.argmax(correct))]


def _span_coordinates(train_features, test_features):
    """Both sets' coordinates in the span of the training features (an orthonormal basis from their SVD).

    An L2-penalised linear model's weights lie in that span (any part
    outside it adds penalty and changes no training prediction), also for
    each fold's subset of the rows; the basis is orthonormal, so penalty and
    scores are unchanged: the same regression, on at most as many numbers as
    there are labelled images (100 rather than a conv code's 3,136, which
    took the solver some 18 s of a draw's 33).
    """
    train_features = train_features.reshape(len(train_features), -1).astype(np.float64)
    _, singular_values, basis = np.linalg.svd(train_features, full_matrices=False)
    # At least one direction, so that features all zero (a dead code) still fit, to the class priors.
    basis = basis[: max(1, int(np.sum(singular_values > singular_values[0] * 1e-10)))]
    test_features = test_features.reshape(len(test_features), -1).astype(np.float64)
    return train_features @ basis.T, test_features @ basis.T


def _probe(train_features, train_labels, test_features, test_labels, folds):
    """`(test accuracy, chosen C)` of a logistic regression, C chosen by cross-validation over `folds`."""
    train_coordinates, test_coordinates = _span_coordinates(train_features, test_features)
    probe = LogisticRegressionCV(Cs=list(C_CHOICES), cv=folds, max_iter=3000, scoring="accuracy")
    with warnings.catch_warnings():
        # scikit-learn 1.9 announces new defaults (l1_ratios, fitted attributes); those used here stay.
        warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
        probe.fit(train_coordinates, train_labels)
    accuracy = np.mean(probe.predict(test_coordinates) == test_labels)
    return float(accuracy), float(np.ravel(probe.C_)[0])


def _draw_accuracies(autoencoder, restarts, labelled, labels, test, choices, seed):
    """`(accuracy, chosen setting)` of each of `METHODS` trained on one labelled subset (images on [0, 1]).

    `restarts`: the networks' restart functions by name, each returning its
    classifier at this draw's start. `test`: the test set's images,
    model-scale images, codes and labels, computed once for every draw.
    """
    test_images, test_scaled, test_codes, test_labels = test
    scaled = autoencoder.image_spec.to_model_scale(labelled)
    folds = _folds(labels, seed)  # the same folds choose every method's setting
    accuracies, chosen = {}, {}
    for name, restart in restarts.items():
        chosen[name] = chosen_epochs(restart, scaled, labels, choices, folds)
        model = restart()
        _train_steps(model, scaled, labels, chosen[name])
        accuracies[name] = float(model.evaluate(test_scaled, test_labels, batch_size=1000, verbose=0)[1])
    codes = autoencoder.embed(labelled)
    accuracies["frozen_probe"], chosen["frozen_probe"] = _probe(codes, labels, test_codes, test_labels, folds)
    accuracies["pixels_probe"], chosen["pixels_probe"] = _probe(
        labelled, labels, test_images, test_labels, folds
    )
    return accuracies, chosen


def check_labels(train_labels, test_labels, per_class):
    """ValueError unless both splits have labels and every class has `per_class` training images."""
    if train_labels is None or test_labels is None:
        raise ValueError(
            "unlabelled pretraining measures classifiers: it needs the labels of the training and test "
            "images (the autoencoder itself trains without them); got None"
        )
    classes, counts = np.unique(train_labels, return_counts=True)
    if len(classes) < 2:  # the logistic regressions refused, after every network of a draw had trained
        raise ValueError(
            f"unlabelled pretraining measures classifiers: the training images need two classes or more, "
            f"got classes {classes.tolist()}"
        )
    if counts.min() < per_class:
        raise ValueError(
            f"class {classes[counts.argmin()]} has {counts.min()} training images, fewer than per_class "
            f"{per_class} (the labelled subsets draw that many of each class)"
        )


def unlabelled_pretraining(
    autoencoder,
    train_images,
    train_labels,
    test_images,
    test_labels,
    *,
    per_class=10,
    draws=5,
    epochs=200,
    seed=0,
):
    """How much an encoder trained without labels helps a classifier that has only a few.

    For each of `draws` labelled subsets (`per_class` training images of
    each class, seeded), four classifiers learn from those images alone
    (`METHODS`): the autoencoder's encoder architecture plus a softmax
    layer, from scratch and from the autoencoder's weights (both trained
    full-batch with Adam 1e-3), and logistic regressions on the frozen
    codes and on the pixels. Each one's setting (the networks' number of
    steps, of `epoch_choices(epochs)`; the regressions' C, of `C_CHOICES`)
    is chosen by `FOLDS`-fold cross-validation on the labelled subset
    alone, then it is trained on the whole subset and scored on all test
    images.

    Args:
        autoencoder: an aekeras autoencoder trained on unlabelled images.
        train_images, train_labels: where the labelled subsets come from,
            on [0, 1].
        test_images, test_labels: the test set, on [0, 1].
        per_class: labelled training images of each class in a subset.
        draws: how many labelled subsets are drawn and measured.
        epochs: the most full-batch steps the networks may take.
        seed: seeds the subsets and each draw's networks.

    Returns:
        `{"accuracy": {method: [per draw]}, "chosen": {method: [setting
        per draw]}, "mean": {method: acc}, "std": {method: acc},
        "labelled": per_class * classes}`.

    Raises:
        ValueError: for labels of `None`, fewer than two classes, or a
            class with fewer than `per_class` training images.
    """
    check_labels(train_labels, test_labels, per_class)
    rng = np.random.default_rng(seed)
    scaled, codes = autoencoder.image_spec.to_model_scale(test_images), autoencoder.embed(test_images)
    test = (test_images, scaled, codes, test_labels)
    restarts_for_draw = _network_restarts(autoencoder, int(max(train_labels.max(), test_labels.max())) + 1)
    runs = []
    for draw in range(draws):
        keras.utils.set_random_seed(seed + draw)
        chosen = labelled_subset(train_labels, per_class, rng)
        labelled = (train_images[chosen], train_labels[chosen])
        restarts = restarts_for_draw()
        runs.append(
            _draw_accuracies(autoencoder, restarts, *labelled, test, epoch_choices(epochs), seed + draw)
        )
    return _summary(runs, labelled=int(per_class * len(np.unique(train_labels))))


def _summary(runs, labelled):
    """Each method's accuracies and chosen settings over the draws, their mean and spread; the labelled count."""
    accuracy = {name: [accuracies[name] for accuracies, _ in runs] for name in METHODS}
    return {
        "accuracy": accuracy,
        "chosen": {name: [settings[name] for _, settings in runs] for name in METHODS},
        "mean": {name: float(np.mean(values)) for name, values in accuracy.items()},
        "std": {name: float(np.std(values)) for name, values in accuracy.items()},
        "labelled": labelled,
    }
