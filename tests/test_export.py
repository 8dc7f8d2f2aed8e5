import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from aekeras import export
from aekeras.models import Autoencoder, DenseAutoencoder
from test_case import mnist


@pytest.fixture(scope="module")
def images():
    """Real test digits on the [0, 1] scale every signature takes."""
    return next(iter(mnist("test", limit=32, batch_size=32))).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = DenseAutoencoder(latent_dim=30)
    out = tmp_path_factory.mktemp("saved_models")
    path = export.saved_model(model, out, "dense", settings={"epochs": 3})
    return model, out, path


def test_signatures_answer_as_the_keras_model(exported, images):
    model, _, path = exported
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    assert set(loaded.signatures) == {"serving_default", "encode", "decode"}
    # The dense model works on [-1, 1]; the signatures take and give [0, 1].
    expected = (model(images * 2 - 1).numpy() + 1) / 2
    result = loaded.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(result["reconstruction"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(
        result["score"].numpy(), np.mean((expected - images) ** 2, axis=(1, 2, 3)), rtol=1e-4
    )
    latent = loaded.signatures["encode"](images=tf.constant(images))["latent"]
    np.testing.assert_allclose(latent.numpy(), model.encode(images * 2 - 1).numpy(), atol=1e-5)
    decoded = loaded.signatures["decode"](latent=latent)["images"]
    np.testing.assert_allclose(decoded.numpy(), expected, atol=1e-5)


def test_batch_dimension_is_dynamic(exported, images):
    _, _, path = exported
    serve = tf.saved_model.load(str(path), tags=["serve"]).signatures["serving_default"]
    for n in (1, 7):
        assert serve(images=tf.constant(images[:n]))["reconstruction"].shape == (n, 28, 28, 1)


def test_versions_count_up_and_settings_travel(exported):
    model, out, path = exported
    assert path == out / "dense" / "1"
    assert json.loads((path / export.SETTINGS_FILE).read_text()) == {"epochs": 3}
    second = export.saved_model(model, out, "dense")
    assert second == out / "dense" / "2" and export.versions(out / "dense") == [1, 2]
    assert not (second / export.SETTINGS_FILE).exists()
    # Only complete versions are visible: no staging folder is left behind.
    assert sorted(p.name for p in (out / "dense").iterdir()) == ["1", "2"]


def test_flat_input_models_take_images_too(tmp_path, images):
    model = DenseAutoencoder(latent_dim=4, image_shape=(784,), output_activation="sigmoid", value_range=(0, 1))
    path = export.saved_model(model, tmp_path, "flat")
    serve = tf.saved_model.load(str(path), tags=["serve"]).signatures["serving_default"]
    expected = model(images.reshape(-1, 784)).numpy().reshape(images.shape)
    np.testing.assert_allclose(serve(images=tf.constant(images))["reconstruction"], expected, atol=1e-5)


def test_failed_export_leaves_nothing(tmp_path):
    class Unexportable(Autoencoder):
        def encode(self, inputs, training=False):
            raise RuntimeError("cannot trace")

    encoder = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)])
    decoder = keras.Sequential([keras.layers.Dense(784), keras.layers.Reshape((28, 28, 1))])
    with pytest.raises(RuntimeError, match="cannot trace"):
        export.saved_model(Unexportable(encoder, decoder), tmp_path, "broken")
    assert list((tmp_path / "broken").iterdir()) == []


def test_bad_model_name(tmp_path):
    with pytest.raises(ValueError, match="model name '../x' must be letters"):
        export.saved_model(DenseAutoencoder(), tmp_path, "../x")
