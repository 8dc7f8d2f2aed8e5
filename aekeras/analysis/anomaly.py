"""Part 6: anomaly detection, by reconstruction error and by latent density."""

import keras
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from aekeras.analysis.metrics import mse
from aekeras.training.callbacks import fit_stopping_at_a_batch

# Published one-class results on MNIST (trained on one digit's training
# images, tested on the whole test set): mean AUROC over the ten digits, in
# percent.
REFERENCE_MEAN_AUROC = {
    "Deep SVDD (Ruff et al., 2018)": 94.8,
    "OCGAN (Perera et al., 2019)": 97.5,
}
# The one-class scores, in the order the report shows them (see `OneClassScores`).
SCORES = ("reconstruction", "relative_reconstruction", "latent_density", "combined")
# The scores `combined` adds, each standardised on held-out normal images.
_COMBINED = ("relative_reconstruction", "latent_density")
# The mixture sizes `LatentDensity` chooses from.
LATENT_COMPONENTS = (1, 2, 4, 8, 16, 32, 64)
# A blank image's mean square, so that its relative error stays finite.
_TINY_ENERGY = 1e-6


def reconstruction_scores(model, images, batch_size=None):
    """Per-image mean squared reconstruction error on the [0, 1] scale."""
    return mse(model.reconstruct(images, batch_size), images)


def relative_reconstruction_scores(model, images, batch_size=None):
    """Per-image reconstruction MSE over the image's own mean square.

    An image with little ink (a one) is reconstructed with a small error by
    any model, so plain MSE ranks it as normal; relative to the image's
    energy, its error counts as much as a heavy image's.
    """
    return _relative(reconstruction_scores(model, images, batch_size), images)


def _relative(errors, images):
    """Per-image `errors` over each image's mean square."""
    energy = np.mean(np.square(np.reshape(images, (len(images), -1))), axis=1)
    return errors / np.maximum(energy, _TINY_ENERGY)


def _one_blas_thread():
    """A context with BLAS on one thread: a mixture's algebra is on matrices of the code's size.

    Threaded OpenBLAS spent more on its threads than on these 32 x 32
    solves and products: a 16-component fit to 5,362 codes of 32 numbers
    took 6.2 s on 2 threads and 0.9 s on one (the largest, 64, 6.8 and 1.8 s).
    """
    return threadpool_limits(limits=1, user_api="blas")


class LatentDensity:
    """A Gaussian mixture over normal images' codes; an image's score is its code's -log density.

    A mixture of each size in `components` is fitted to `codes`, and the
    one that gives the held-out `validation_codes` the highest likelihood
    is kept: normal images choose it, no anomaly is needed. Sizes larger
    than the codes are many, or whose fit collapses a component onto a few
    codes, are not candidates.
    """

    def __init__(self, codes, validation_codes, components=LATENT_COMPONENTS, seed=0):
        # In float64: scikit-learn fits float32 codes in float32, where a
        # narrow component's covariance can lose its positive definiteness.
        codes, validation_codes = np.float64(codes), np.float64(validation_codes)
        fits = {}
        for size in (size for size in components if size <= len(codes)):
            try:
                with _one_blas_thread():
                    fits[size] = GaussianMixture(size, covariance_type="full", random_state=seed).fit(codes)
            except ValueError:  # scikit-learn: "some components have ill-defined empirical covariance"
                continue
        if not fits:
            raise ValueError(f"no Gaussian mixture of {components} components fits these {len(codes)} codes")
        self.components = max(fits, key=lambda size: fits[size].score(validation_codes))
        self.mixture = fits[self.components]

    def scores(self, codes):
        with _one_blas_thread():
            return -self.mixture.score_samples(np.float64(codes))


class OneClassScores:
    """The anomaly scores of an autoencoder trained on normal images only.

    `reconstruction` is the lecture's (MSE); `relative_reconstruction`
    divides it by the image's mean square; `latent_density` is the code's
    -log density under a `LatentDensity` of the training codes; `combined`
    adds the last two, each standardised by its mean and spread on held-out
    normal images, so that neither outweighs the other by its units. An
    image far from the normal class either reconstructs badly for its ink
    or encodes where normal images rarely do.
    """

    def __init__(self, model, train_images, validation_images, seed=0):
        if len(validation_images) < 2:
            raise ValueError(
                f"OneClassScores needs at least 2 held-out normal images to standardise on, "
                f"got {len(validation_images)}"
            )
        self.model = model
        validation_codes = model.embed(validation_images)
        self.density = LatentDensity(model.embed(train_images), validation_codes, seed=seed)
        held_out = self._parts(validation_images, validation_codes)
        self.center = {name: float(np.mean(held_out[name])) for name in _COMBINED}
        self.spread = {name: float(np.std(held_out[name])) for name in _COMBINED}
        for name, spread in self.spread.items():
            if not spread > 0:  # the combined score would be inf or NaN
                raise ValueError(
                    f"the held-out normal images' {name} scores do not vary (all {self.center[name]:.6g}); "
                    "OneClassScores standardises on their spread, so hold out images that differ"
                )

    def _parts(self, images, codes):
        """Every score but `combined`, from one reconstruction of `images` and their `codes`."""
        errors = reconstruction_scores(self.model, images)
        return {
            "reconstruction": errors,
            "relative_reconstruction": _relative(errors, images),
            "latent_density": self.density.scores(codes),
        }

    def __call__(self, images):
        """`{score name: per-image scores}`, for every name in `SCORES`."""
        scores = self._parts(images, self.model.embed(images))
        scores["combined"] = sum((scores[name] - self.center[name]) / self.spread[name] for name in _COMBINED)
        return scores


def _held_out_count(count, fraction):
    """How many of a class's `count` training images `_held_out_split` holds out."""
    return int(round(fraction * count))


def _held_out_split(images, fraction, seed):
    """`(train, validation)`: a seeded `fraction` of `images` held out, both in their order."""
    order = np.random.default_rng(seed).permutation(len(images))
    cut = _held_out_count(len(images), fraction)
    return images[np.sort(order[cut:])], images[np.sort(order[:cut])]


def _one_class_scores(
    build_model, normal, validation, seed, model_seed, *, epochs, batch_size, learning_rate
):
    """`OneClassScores` of a fresh model trained on `normal` images, its weights and order seeded by `model_seed`."""
    keras.utils.set_random_seed(model_seed)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    fit_stopping_at_a_batch(
        model, model.image_spec.to_model_scale(normal), epochs=epochs, batch_size=batch_size, verbose=0
    )
    return OneClassScores(model, normal, validation, seed=seed)


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
    digits=None,
    validation_fraction=0.1,
    seed=0,
    progress=None,
):
    """One model per digit, trained on that digit only, scores every test image.

    For digit d the test images of d are normal and all others anomalies;
    each of `OneClassScores`' scores is measured by its AUROC
    (`sklearn.metrics.roc_auc_score`, in percent): how well it ranks
    anomalies above normal images. A `validation_fraction` of the digit's
    training images is held out: the latent mixture's size and the
    standardisation of the combined score are chosen on them, so nothing
    is chosen on test images or on anomalies.

    Args:
        build_model: callable returning a fresh aekeras autoencoder.
        train_images, train_labels, test_images, test_labels: labelled
            images on [0, 1] of the model's shape.
        epochs, batch_size, learning_rate: training of each model.
        digits: which classes to run (default: every class of
            `train_labels`).
        validation_fraction: the held-out share of each digit's images.
        seed: seeds each model's weights, data order and held-out images
            (with its digit), so the figures do not depend on what ran before.
        progress: optional callable taking a message.

    Returns:
        `{"auroc": {score: {digit: percent}}, "mean_auroc": {score: percent},
        "latent_components": {digit: mixture size}, "train_images": {digit:
        count}, "validation_images": {digit: count}, "reference_mean_auroc":
        REFERENCE_MEAN_AUROC}`, scores named as in `SCORES`.
    """
    result = {"auroc": {name: {} for name in SCORES}, "latent_components": {}}
    result.update(train_images={}, validation_images={})
    training = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    for digit in check_labels(train_labels, test_labels, digits, validation_fraction):
        if progress:
            progress(f"one-class model for class {digit}")
        normal, validation = _held_out_split(
            train_images[train_labels == digit], validation_fraction, seed + digit
        )
        scores = _one_class_scores(build_model, normal, validation, seed, seed + digit, **training)
        for name, values in scores(test_images).items():
            result["auroc"][name][digit] = 100.0 * roc_auc_score(test_labels != digit, values)
        result["latent_components"][digit] = scores.density.components
        result["train_images"][digit], result["validation_images"][digit] = len(normal), len(validation)
    result["mean_auroc"] = {name: float(np.mean(list(a.values()))) for name, a in result["auroc"].items()}
    result["reference_mean_auroc"] = dict(REFERENCE_MEAN_AUROC)
    return result


def check_labels(train_labels, test_labels, classes=None, validation_fraction=0.1):
    """The classes one-class detection runs (`classes`, or every class of the training labels); ValueError, in words, where it cannot.

    Checked before any model trains: each class needs test images of its
    own and of other classes (else its AUROC is undefined), and enough
    training images to hold out the 2 `OneClassScores` standardises on
    and keep 1 or more to train on.
    """
    if train_labels is None or test_labels is None:
        raise ValueError(
            "one-class detection needs the labels of the training and test images (each class is normal "
            "in turn, the others anomalies); got None"
        )
    present, counts = (values.tolist() for values in np.unique(train_labels, return_counts=True))
    classes = present if classes is None else [int(label) for label in classes]
    missing = [label for label in classes if label not in present]
    if missing:
        raise ValueError(f"no training images of class {missing[0]} (the classes present: {present})")
    tested = np.unique(test_labels).tolist()
    for label in classes:
        if label not in tested or tested == [label]:  # the AUROC would be NaN
            raise ValueError(
                f"the test images must hold class {label} and other classes, to rank one against the other "
                f"(the classes they hold: {tested})"
            )
        count = counts[present.index(label)]
        held_out = _held_out_count(count, validation_fraction)
        if held_out < 2 or held_out == count:
            raise ValueError(
                f"class {label} has {count} training images: holding out {validation_fraction:g} of them "
                f"keeps {held_out} to standardise the one-class scores on and {count - held_out} to train "
                "on, where 2 or more and 1 or more are needed"
            )
    return classes


def out_of_distribution(model, in_images, out_images):
    """AUROC (percent) of reconstruction error separating out- from in-distribution images."""
    if not (len(in_images) and len(out_images)):
        raise ValueError(
            f"out_of_distribution needs images of both kinds, got {len(in_images)} in-distribution and "
            f"{len(out_images)} out-of-distribution ones"
        )
    in_scores = reconstruction_scores(model, in_images)
    out_scores = reconstruction_scores(model, out_images)
    labels = np.concatenate([np.zeros(len(in_scores)), np.ones(len(out_scores))])
    auroc = 100.0 * roc_auc_score(labels, np.concatenate([in_scores, out_scores]))
    return {"auroc": float(auroc), "in_scores": in_scores, "out_scores": out_scores}
