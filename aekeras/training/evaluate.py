"""Evaluating a trained model: its own losses and the figures every model shares."""

import keras
import numpy as np

from aekeras import losses
from aekeras.progress import tracked


def evaluate_model(model, test_data, seed=0, verbose=False, **evaluation_options):
    """The model's own test losses, plus comparable figures for every model.

    Returns `evaluate`'s metrics and `mse_01`, the mean squared error of
    clean reconstructions on the [0, 1] scale; plus the per-example figures
    the model itself adds (`model.evaluation_metrics`, such as the VAE's
    `nll` and `neg_elbo`), averaged, drawing any randomness from `seed` and
    the model's evaluation stream (after `evaluate`, which restarts it);
    `verbose` shows the progress of that pass over the test batches.
    """
    metrics = {k: float(v) for k, v in model.evaluate(test_data, verbose=0, return_dict=True).items()}
    spec = model.image_spec
    rng = np.random.default_rng(seed)
    per_example = {"mse_01": []}
    batches = int(test_data.cardinality())
    for batch in tracked(test_data, batches if batches >= 0 else None, "test figures (batches)", verbose):
        # A conditioned model's batches are (images, labels), and it reads both.
        images, conditions = (batch[0], {"labels": batch[1]}) if model.conditioned else (batch, {})
        reconstructions = model(batch)
        images = model.scaled_images(images)  # uint8 pixels as stored, as the model itself reads them
        errors = losses.squared_error(spec.to_unit_scale(images), spec.to_unit_scale(reconstructions))
        per_example["mse_01"].append(keras.ops.convert_to_numpy(errors))
        with model.evaluation_stream():  # the same figures every call, training's stream left alone
            figures = model.evaluation_metrics(images, rng, **conditions, **evaluation_options)
        for name, values in figures.items():
            per_example.setdefault(name, []).append(values)
    metrics.update({name: float(np.mean(np.concatenate(v))) for name, v in per_example.items()})
    return metrics
