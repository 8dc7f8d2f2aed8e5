"""A shared base class for model tests, in the manner of keras-hub's TestCase.

Each model's test file subclasses `AutoencoderTestCase` and calls these
helpers with its own model, so the checks every model must pass live once.
"""

import keras
import numpy as np

import aekeras
from aekeras import registry

# Small options for each registered model, so the session's exports train fast.
SMALL = {
    "dense": {"latent_dim": 16},
    "conv": {"latent_dim": 8},
    "denoising": {"latent_dim": 64},
    "contractive": {"latent_dim": 16},
    "vae": {"latent_dim": 4},
    "iwae": {"latent_dim": 4, "num_samples": 2},
    "vqvae": {"num_embeddings": 16, "embedding_dim": 4},
    "cvae": {"latent_dim": 4},
}
MODEL_NAMES = registry.model_names()
# The models whose signatures take images (or codes) alone: the shared export,
# serving and conversion suites run on these; the conditional VAE's
# signatures also take labels, and test_cvae.py runs them.
IMAGE_ONLY_NAMES = tuple(name for name in MODEL_NAMES if name != "cvae")


class AutoencoderTestCase:
    def run_serialization_test(self, model):
        """`get_config` round-trips through `from_config` and Keras serialization."""
        config = model.get_config()
        revived = type(model).from_config(config)
        assert revived.get_config() == config
        serialized = keras.saving.serialize_keras_object(model)
        assert serialized["registered_name"] == f"aekeras>{type(model).__name__}"
        revived = keras.saving.deserialize_keras_object(serialized)
        assert type(revived) is type(model)
        assert revived.get_config() == config

    def run_saving_test(self, model, inputs, tmp_path):
        """`.keras` save and load gives identical outputs and a working train_step."""
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(inputs, epochs=1, batch_size=len(inputs), verbose=0)
        path = tmp_path / "model.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model(inputs)),
            keras.ops.convert_to_numpy(loaded(inputs)),
        )
        # The custom train_step survives loading: one more step reports the
        # model's own trackers and changes the weights.
        before = [w.numpy().copy() for w in loaded.trainable_weights]
        logs = loaded.fit(inputs, epochs=1, batch_size=len(inputs), verbose=0).history
        assert set(logs) == {"loss", *model.loss_term_names, *model.monitor_term_names}
        after = [w.numpy() for w in loaded.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
        self.check_conveniences(loaded, inputs)
        return loaded

    def check_conveniences(self, model, inputs):
        """`reconstruct`, `embed` and `interpolate` take and give images on [0, 1].

        A conditioned model's `inputs` are `(images, labels)`; its path is
        interpolated within the first image's class.
        """
        images, labels = inputs if model.conditioned else (inputs, None)
        spec = model.image_spec
        unit = spec.to_unit_scale(np.asarray(images))  # the inputs are on the model's scale
        reconstructions = model.reconstruct(unit, labels=labels)
        np.testing.assert_allclose(reconstructions, spec.to_unit_scale(model(inputs).numpy()), atol=1e-5)
        codes = model.embed(unit, labels=labels)
        encoded = model.encode(images, **model.conditions(labels, len(images)))
        np.testing.assert_allclose(codes, keras.ops.convert_to_numpy(encoded), atol=1e-5)
        label = None if labels is None else labels[0]
        path = model.interpolate(unit[0], unit[1], steps=3, label=label)
        assert path.shape == (3, *model.image_shape)
        ends = model.conditions([label] * 2, 2)
        ends_labels = ends.get("labels")
        reconstructed = model.reconstruct(unit[:2], labels=ends_labels)
        np.testing.assert_allclose(path[[0, 2]], reconstructed, atol=1e-5)
        codes = model.embed(unit[:2], labels=ends_labels)
        halfway = model.decode((codes[:1] + codes[1:2]) / 2, **model.conditions([label], 1))
        np.testing.assert_allclose(
            path[1:2], spec.to_unit_scale(keras.ops.convert_to_numpy(halfway)), atol=1e-5
        )

    def run_fit_test(self, model, train, test, epochs=2, learning_rate=1e-3, val_rtol=1e-5):
        """A short fit on real data lowers the test loss; evaluate works as validation.

        `val_rtol` allows for models whose loss draws fresh noise each time.
        """
        model.compile(optimizer=keras.optimizers.Adam(learning_rate))
        before = model.evaluate(test, verbose=0, return_dict=True)
        history = model.fit(train, epochs=epochs, validation_data=test, verbose=0)
        after = model.evaluate(test, verbose=0, return_dict=True)
        assert after["loss"] < before["loss"]
        # validation_data runs the same test_step as evaluate.
        assert np.isclose(history.history["val_loss"][-1], after["loss"], rtol=val_rtol)
        assert set(after) == {
            "loss",
            *model.loss_term_names,
            *model.monitor_term_names,
            *model.evaluation_term_names,
        }
        return before, after


def mnist(split, limit, batch_size=256, value_range=(0.0, 1.0), **kwargs):
    """A small real-MNIST pipeline for model tests."""
    return aekeras.data.load(
        "mnist", split, limit=limit, batch_size=batch_size, value_range=value_range, **kwargs
    )


def check_picks_differ_only_at_near_ties(model, unit_images, picks, reference_picks):
    """A VQ-VAE's codebook `picks` equal the `reference_picks` wherever one codebook vector is clearly nearest.

    Another runtime sums the float32 distances in another order, so where
    two codebook vectors lie at equal distance up to rounding it may pick
    the other one. Each differing pick must be such a tie: its two
    vectors' squared distances, worked out in float64 from the Keras
    model's vectors, agree within 1e-4 of the squared norms: room for the
    rounding of each runtime's own encoder outputs, float32 like Keras's,
    and for that alone. Measured on a one-epoch
    model's 98,000 test positions: the nearest two vectors' gap is a median
    0.02 of the norms, 8e-4 at the blank background, under 1e-4 at 0.1% of
    positions; a scrambled index order put it at up to 1.4.

    Returns the share of picks that differ.
    """
    differ = picks != reference_picks
    if not differ.any():
        return 0.0
    vectors = model.encode_continuous(model.image_spec.to_model_scale(unit_images)).numpy()
    vectors = vectors.astype(np.float64)[differ]
    codebook = model.quantizer.codebook.numpy().astype(np.float64)
    picked, reference = codebook[picks[differ]], codebook[reference_picks[differ]]
    gaps = np.abs(np.sum((vectors - picked) ** 2, axis=1) - np.sum((vectors - reference) ** 2, axis=1))
    scales = np.sum(vectors**2, axis=1) + np.sum(picked**2, axis=1) + np.sum(reference**2, axis=1)
    assert np.all(gaps <= 1e-4 * scales), (gaps / scales).max()
    return float(differ.mean())
