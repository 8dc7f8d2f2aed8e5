"""The defaults on users' images beyond MNIST: what they learn, or the note saying what to change."""

import types

import keras
import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from aekeras import optimizers, registry
from aekeras.data import ImageSpec
from aekeras.training.advice import learning_rate_note


def photo_crops(size, step):
    """Colour crops, every `step` pixels, of scikit-learn's two photographs, on [0, 1]."""
    crops = [
        photo[y : y + size, x : x + size]
        for photo in load_sample_images().images
        for y in range(0, photo.shape[0] - size + 1, step)
        for x in range(0, photo.shape[1] - size + 1, step)
    ]
    return np.asarray(crops, np.float32) / 255.0


def vae_kl_after_two_epochs(images, learning_rate):
    """The default VAE's (`aekeras train vae`'s) KL after two epochs of Adam, from seed 0's weights."""
    keras.utils.set_random_seed(0)
    model = registry.build_model("vae", ImageSpec(shape=images.shape[1:]))
    model.compile(optimizer=optimizers.Adam(learning_rate))
    model.fit(images, epochs=2, batch_size=256, shuffle=False, verbose=0)
    return float(model.evaluate(images[:256], batch_size=256, verbose=0, return_dict=True)["kl_loss"])


def test_no_note_for_the_lectures_mnist_models():
    for kind in ("dense", "vae", "denoising", "contractive", "conv"):
        assert learning_rate_note(registry.build_model(kind, ImageSpec(shape=(28, 28, 1))), 1e-3) is None


def test_no_note_and_no_error_for_a_plugins_encoder_of_one_layer():
    # BaseAutoencoder takes any Keras layer as its encoder; reading `.layers` of one stopped `aekeras train`.
    plugin = types.SimpleNamespace(encoder=keras.layers.Dense(4))
    assert learning_rate_note(plugin, 1e-3) is None


def test_note_names_a_smaller_rate_for_dense_models_of_large_colour_images():
    model = registry.build_model("vae", ImageSpec(shape=(64, 64, 3)))
    note = learning_rate_note(model, 1e-3)
    assert "12288 values" in note and "--learning-rate 0.0003" in note
    assert learning_rate_note(model, 3e-4) is None  # the user took it
    conv = registry.build_model("vae", ImageSpec(shape=(64, 64, 3)), architecture="conv")
    assert learning_rate_note(conv, 1e-3) is None  # a 3x3 kernel reads 27 values


@pytest.mark.slow
def test_the_suggested_rate_keeps_the_default_vae_from_blowing_up_on_64x64_photo_crops():
    # 800 crops, 8 steps: at 1e-3 the KL was 3,942 nats, at the suggested rate 110 (from
    # seeds 1-3: 3.5-8x as much over 2 and 4 epochs). Over a CLI epoch of 2,352 crops it
    # reached 287,000 nats, and the reconstructions collapsed to the mean image.
    crops = photo_crops(64, 24)
    blown_kl = vae_kl_after_two_epochs(crops, 1e-3)
    kl = vae_kl_after_two_epochs(crops, 1e-3 * np.sqrt(784 / crops[0].size))
    assert blown_kl > 3 * kl, (blown_kl, kl)


def test_aekeras_train_prints_the_note_once_the_model_is_built(tmp_path, monkeypatch, capsys):
    from aekeras import cli

    monkeypatch.chdir(tmp_path)
    np.savez("crops.npz", images=(photo_crops(64, 96) * 255).round().astype(np.uint8))
    assert cli.main(["train", "vae", "--data", "crops.npz", "--epochs", "1", "--quiet"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert notes == [learning_rate_note(registry.build_model("vae", ImageSpec(shape=(64, 64, 3))), 1e-3)]
