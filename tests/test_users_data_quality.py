"""The defaults on users' images beyond MNIST: what they learn, or the note saying what to change."""

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
    """The default VAE's (`aekeras train vae`'s) KL after two epochs of Adam."""
    model = registry.build_model("vae", ImageSpec(shape=images.shape[1:]))
    model.compile(optimizer=optimizers.Adam(learning_rate))
    model.fit(images, epochs=2, batch_size=256, shuffle=False, verbose=0)
    return float(model.evaluate(images[:256], batch_size=256, verbose=0, return_dict=True)["kl_loss"])


def test_no_note_for_the_lectures_mnist_models():
    for kind in ("dense", "vae", "denoising", "contractive", "conv"):
        assert learning_rate_note(registry.build_model(kind, ImageSpec(shape=(28, 28, 1))), 1e-3) is None


def test_note_names_a_smaller_rate_for_dense_models_of_large_colour_images():
    model = registry.build_model("vae", ImageSpec(shape=(64, 64, 3)))
    note = learning_rate_note(model, 1e-3)
    assert "12288 pixel values" in note and "--learning-rate 0.0003" in note
    assert learning_rate_note(model, 3e-4) is None  # the user took it
    conv = registry.build_model("vae", ImageSpec(shape=(64, 64, 3)), architecture="conv")
    assert learning_rate_note(conv, 1e-3) is None  # a 3x3 kernel reads 27 values


@pytest.mark.slow
def test_the_suggested_rate_keeps_the_default_vae_from_collapsing_on_64x64_photo_crops():
    # 800 crops, 8 steps: at 1e-3 the KL was already 1,020 nats (287,000 over a CLI epoch
    # of 2,352 crops, then the mean image), at the suggested rate 128.
    crops = photo_crops(64, 24)
    blown_kl = vae_kl_after_two_epochs(crops, 1e-3)
    kl = vae_kl_after_two_epochs(crops, 1e-3 * np.sqrt(784 / crops[0].size))
    assert blown_kl > 4 * kl, (blown_kl, kl)
