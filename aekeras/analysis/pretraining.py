"""Part 12: autoencoders learn from unlabelled data, measured with 100 labels."""

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression

METHODS = {
    "scratch": "encoder + softmax, from scratch",
    "fine_tuned": "encoder + softmax, pretrained, fine-tuned",
    "frozen_probe": "pretrained codes + logistic regression",
    "pixels_probe": "pixels + logistic regression",
}


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
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _probe_accuracy(train_features, train_labels, test_features, test_labels):
    """Test accuracy of a logistic regression (scikit-learn's defaults) on flattened features."""
    probe = LogisticRegression(max_iter=3000)
    probe.fit(train_features.reshape(len(train_features), -1), train_labels)
    return float(np.mean(probe.predict(test_features.reshape(len(test_features), -1)) == test_labels))


def _draw_accuracies(autoencoder, labelled, labels, test, epochs):
    """Test accuracy of each of `METHODS` trained on one labelled subset (images on [0, 1]).

    `test`: the test set's images, model-scale images, codes and labels,
    computed once for every draw.
    """
    test_images, test_scaled, test_codes, test_labels = test
    num_classes = int(max(labels.max(), test_labels.max())) + 1
    scaled = autoencoder.image_spec.to_model_scale(labelled)
    accuracies = {}
    for name, pretrained in (("scratch", False), ("fine_tuned", True)):
        model = classifier(autoencoder, num_classes, pretrained)
        model.fit(scaled, labels, epochs=epochs, batch_size=len(scaled), verbose=0)
        accuracies[name] = float(model.evaluate(test_scaled, test_labels, batch_size=1000, verbose=0)[1])
    accuracies["frozen_probe"] = _probe_accuracy(autoencoder.embed(labelled), labels, test_codes, test_labels)
    accuracies["pixels_probe"] = _probe_accuracy(labelled, labels, test_images, test_labels)
    return accuracies


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
    full-batch with Adam 1e-3 for `epochs` steps), and logistic regressions
    on the frozen codes and on the pixels. Each is scored on all test images.

    Args:
        autoencoder: an aekeras autoencoder trained on unlabelled images.
        train_images, train_labels: where the labelled subsets come from,
            on [0, 1].
        test_images, test_labels: the test set, on [0, 1].

    Returns:
        `{"accuracy": {method: [per draw]}, "mean": {method: acc},
        "std": {method: acc}, "labelled": per_class * classes}`.
    """
    rng = np.random.default_rng(seed)
    test = (
        test_images,
        autoencoder.image_spec.to_model_scale(test_images),
        autoencoder.embed(test_images),
        test_labels,
    )
    runs = []
    for draw in range(draws):
        keras.utils.set_random_seed(seed + draw)
        chosen = labelled_subset(train_labels, per_class, rng)
        runs.append(_draw_accuracies(autoencoder, train_images[chosen], train_labels[chosen], test, epochs))
    accuracy = {name: [run[name] for run in runs] for name in METHODS}
    return {
        "accuracy": accuracy,
        "mean": {name: float(np.mean(values)) for name, values in accuracy.items()},
        "std": {name: float(np.std(values)) for name, values in accuracy.items()},
        "labelled": int(per_class * len(np.unique(train_labels))),
    }
