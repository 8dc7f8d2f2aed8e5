"""TensorBoard pictures: reconstruction grids every epoch and the latent projector, read back."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins.projector import projector_config_pb2
from test_case import mnist

from aekeras.callbacks import (
    EMBEDDING_TENSOR,
    LatentProjector,
    ReconstructionImages,
    image_grid,
    write_projector,
)
from aekeras.models import VAE, ConvAutoencoder, DenoisingAutoencoder, DenseAutoencoder


def pictures(log_dir):
    """`{tag: {step: uint8 picture}}` from the event files in `log_dir`."""
    found = {}
    for path in tf.io.gfile.glob(str(log_dir / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                encoded = tf.make_ndarray(value.tensor)[2]  # width, height, then the PNG
                found.setdefault(value.tag, {})[event.step] = tf.io.decode_png(encoded).numpy()
    return found


def fit(model, callbacks, epochs=2):
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    train = mnist("train", limit=1024, batch_size=128, value_range=model.value_range)
    model.fit(train, epochs=epochs, callbacks=callbacks, verbose=0)
    return model


@pytest.fixture(scope="module")
def test_digits(mnist_test_arrays):
    images, labels = mnist_test_arrays
    return images[:1000], labels[:1000]


def test_every_epoch_shows_the_images_beside_their_reconstructions(tmp_path, test_digits):
    images = test_digits[0][:8]
    model = fit(DenseAutoencoder(latent_dim=8), [ReconstructionImages(tmp_path, images)])
    grids = pictures(tmp_path)
    assert set(grids) == {"reconstructions"} and set(grids["reconstructions"]) == {0, 1}
    last = grids["reconstructions"][1].astype(np.float32) / 255
    assert last.shape == (2 * 28, 8 * 28, 1)
    np.testing.assert_allclose(last[:28], image_grid([images])[0][:28], atol=1 / 255 + 1e-6)
    np.testing.assert_allclose(last[28:], image_grid([model.reconstruct(images)])[0], atol=1 / 255 + 1e-6)
    # The reconstructions change as the model learns; the images stay.
    first = grids["reconstructions"][0]
    assert np.array_equal(first[:28], grids["reconstructions"][1][:28])
    assert not np.array_equal(first[28:], grids["reconstructions"][1][28:])


def test_denoising_adds_the_corrupted_inputs_and_the_vae_its_prior_samples(tmp_path, test_digits):
    images = test_digits[0][:4]

    def denoising():
        # Seeded before it is built: the same initial weights whatever ran before in the process.
        keras.utils.set_random_seed(1)
        return DenoisingAutoencoder(DenseAutoencoder(latent_dim=16), seed=1)

    pictured = fit(denoising(), [ReconstructionImages(tmp_path / "d", images)], 2)
    # The pictures draw their own noise: training's draws, and so its weights, are untouched.
    plain = fit(denoising(), [], 2)
    for a, b in zip(pictured.weights, plain.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    grids = pictures(tmp_path / "d")["reconstructions"]
    assert np.array_equal(grids[0][28:56], grids[1][28:56])  # the same corruption every epoch
    grid = grids[0]
    assert grid.shape == (3 * 28, 4 * 28, 1)
    corrupted = grid[28:56].astype(np.float32) / 255
    # The lecture's dropout mask on the model's [-1, 1] scale: about half the
    # pixels become 0 there, mid-grey (0.5) on [0, 1]; the digits have almost none.
    dropped = lambda pictures: np.mean(np.abs(pictures - 0.5) < 1 / 255)  # noqa: E731
    assert dropped(corrupted) > 0.3 and dropped(images) < 0.05

    vae = fit(VAE(latent_dim=2, seed=0), [ReconstructionImages(tmp_path / "v", images, num_samples=6)], 2)
    grids = pictures(tmp_path / "v")
    assert grids["prior_samples"][0].shape == (28, 6 * 28, 1)
    assert not np.array_equal(grids["prior_samples"][0], grids["prior_samples"][1])
    # The same draws every epoch, decoded by the model as it is then: the last epoch's are the trained model's.
    last = grids["prior_samples"][1].astype(np.float32) / 255
    np.testing.assert_allclose(last, image_grid([vae.sample(6, seed=0)])[0], atol=1 / 255 + 1e-6)


def test_heavy_dropout_is_pictured_as_the_model_repairs_it(test_digits):
    # At rate 0.7 the mask scales kept values by 3.3 on the model's [-1, 1]: past [0, 1], and not 0-255 pixels.
    images = test_digits[0][:4]
    model = DenoisingAutoencoder(DenseAutoencoder(latent_dim=16), noise_level=0.7, seed=1)
    shown, corrupted, repaired = model.picture_rows(images)
    assert corrupted.max() > 2
    np.testing.assert_array_equal(shown, images)
    spec = model.image_spec
    expected = spec.to_unit_scale(model.predict(spec.to_model_scale(corrupted), verbose=0))
    np.testing.assert_allclose(repaired, expected, atol=1e-5)


def test_the_projector_shows_the_codes_with_sprite_and_labels(tmp_path, test_digits):
    images, labels = test_digits
    names = [f"digit {d}" for d in range(10)]
    model = fit(DenseAutoencoder(latent_dim=8), [LatentProjector(tmp_path, images, labels, names)], 1)
    config = text_format.Parse(
        (tmp_path / "projector_config.pbtxt").read_text(), projector_config_pb2.ProjectorConfig()
    )
    (embedding,) = config.embeddings
    assert embedding.tensor_name == EMBEDDING_TENSOR
    checkpoint = tf.train.latest_checkpoint(str(tmp_path))
    codes = tf.train.load_checkpoint(checkpoint).get_tensor(EMBEDDING_TENSOR)
    np.testing.assert_allclose(codes, model.embed(images), atol=1e-6)
    rows = (tmp_path / embedding.metadata_path).read_text().splitlines()
    assert rows[0] == "label\tclass" and len(rows) == 1001
    assert rows[1:4] == [f"{labels[i]}\tdigit {labels[i]}" for i in range(3)]
    sprite = tf.io.decode_png((tmp_path / embedding.sprite.image_path).read_bytes()).numpy()
    assert list(embedding.sprite.single_image_dim) == [28, 28]
    assert sprite.shape == (32 * 28, 32 * 28, 3)  # 1,000 thumbnails in a 32x32 square
    np.testing.assert_allclose(sprite[:28, :28, 0] / 255, images[0, :, :, 0], atol=1 / 255 + 1e-6)


def test_uint8_pixels_give_the_pictures_and_codes_of_their_float_images(tmp_path, test_digits):
    images = test_digits[0][:8]
    pixels = np.round(images * 255).astype(np.uint8)  # MNIST's pixels as stored
    callbacks = [ReconstructionImages(tmp_path / "u8", pixels), LatentProjector(tmp_path / "p", pixels)]
    model = fit(DenseAutoencoder(latent_dim=8), callbacks, 1)
    grid = pictures(tmp_path / "u8")["reconstructions"][0].astype(np.float32) / 255
    np.testing.assert_allclose(grid[:28], image_grid([images])[0][:28], atol=1 / 255 + 1e-6)
    np.testing.assert_allclose(grid[28:], image_grid([model.reconstruct(images)])[0], atol=1 / 255 + 1e-6)
    codes = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "p")))
    np.testing.assert_allclose(codes.get_tensor(EMBEDDING_TENSOR), model.embed(images), atol=1e-5)
    # Without labels, one row per point (TensorBoard refuses a count that differs), and no header.
    assert (tmp_path / "p" / "metadata.tsv").read_text().splitlines() == [str(i) for i in range(8)]


def test_a_flat_vector_model_gets_its_vectors_drawn_as_strips(tmp_path):
    from sklearn.datasets import load_digits

    from aekeras.data import ImageSpec

    digits = load_digits()
    vectors = (digits.data[:256] / 16).astype(np.float32)  # 8x8 digits as 64 values
    model = DenseAutoencoder(
        latent_dim=4, image_spec=ImageSpec((64,)), value_range=(0, 1), output_activation="sigmoid"
    )
    model.compile(optimizer="adam")
    callbacks = [
        ReconstructionImages(tmp_path / "i", vectors[:4]),
        LatentProjector(tmp_path / "p", vectors[:8], digits.target[:8]),
    ]
    model.fit(vectors, epochs=1, verbose=0, callbacks=callbacks)
    grid = pictures(tmp_path / "i")["reconstructions"][0].astype(np.float32) / 255
    assert grid.shape == (2, 4 * 64, 1)  # a row of strips for the vectors, one for their reconstructions
    np.testing.assert_allclose(grid[0].reshape(4, 64), vectors[:4], atol=1 / 255 + 1e-6)
    sprite = tf.io.decode_png((tmp_path / "p" / "sprite.png").read_bytes()).numpy()
    assert sprite.shape == (3 * 1, 3 * 64, 3)
    # Labels without names: the label alone on each point's row, no header (one column has none).
    metadata = (tmp_path / "p" / "metadata.tsv").read_text().splitlines()
    assert metadata == [str(label) for label in digits.target[:8]]


def test_four_channel_images_get_a_projector_sprite_of_their_colours(tmp_path, rgb_crops):
    """The sprite was built for 3 channels: fit raised at its end, its History lost."""
    crops = rgb_crops[1][:16]
    alpha = crops.max(axis=-1, keepdims=True)  # an alpha channel from the photos' own brightness
    rgba = np.concatenate([crops, alpha], axis=-1)
    model = ConvAutoencoder(filters=(4, 2), image_shape=(32, 32, 4))
    model.compile(optimizer="adam")
    history = model.fit(rgba, epochs=1, verbose=0, callbacks=[LatentProjector(tmp_path, rgba)])
    assert len(history.history["loss"]) == 1
    sprite = tf.io.decode_png((tmp_path / "sprite.png").read_bytes()).numpy()
    assert sprite.shape == (4 * 32, 4 * 32, 3)
    np.testing.assert_array_equal(sprite[:32, :32], crops[0])  # its colours, alpha left out


def test_callbacks_that_cannot_draw_say_so_before_training(tmp_path, test_digits):
    """Wrong labels or images were found once training was spent (a bare IndexError, files half-written)."""
    images, labels = test_digits
    with pytest.raises(
        ValueError, match=r"labels must be one integer per image \(10\), got int\d+ labels of shape \(9,\)"
    ):
        LatentProjector(tmp_path, images[:10], labels[:9])
    with pytest.raises(ValueError, match=r"labels must index class_names \(0 to 1\), got labels from 0 to 9"):
        LatentProjector(tmp_path, images[:100], labels[:100], class_names=["zero", "one"])
    with pytest.raises(ValueError, match=r"labels must index class_names \(0 to 8\), got labels from 0 to 9"):
        LatentProjector(tmp_path, images[:100], labels[:100], class_names=[str(d) for d in range(9)])
    model = DenseAutoencoder(latent_dim=4)
    model.compile(optimizer="adam")
    for callback in (
        ReconstructionImages(tmp_path / "i", images[:4, :14]),
        LatentProjector(tmp_path / "p", images[:4, :14]),
    ):
        with pytest.raises(
            ValueError, match=r"got images of shape \(4, 14, 28, 1\), where the model takes \(n, 28, 28, 1\)"
        ):
            model.fit(images[:64], epochs=1, verbose=0, callbacks=[callback])
    # No images: the model refused them only once the first epoch, or the whole training, was spent.
    for callback in (
        ReconstructionImages(tmp_path / "i", images[:0]),
        LatentProjector(tmp_path / "p", images[:0]),
    ):
        with pytest.raises(ValueError, match=r"got no images \(expected at least one to draw\)"):
            model.fit(images[:64], epochs=1, verbose=0, callbacks=[callback])
    assert int(model.optimizer.iterations) == 0 and not any(tmp_path.iterdir())


def test_a_variant_whose_sample_takes_no_seed_is_refused_before_training(tmp_path, test_digits):
    class OlderVAE(VAE):  # a variant written before `sample` took `seed=`
        def sample(self, num_samples):
            return super().sample(num_samples)

    model = OlderVAE(latent_dim=2, seed=0)
    model.compile(optimizer="adam")
    images = test_digits[0][:4]
    with pytest.raises(TypeError, match="unexpected keyword argument 'seed'"):
        model.fit(images, epochs=1, verbose=0, callbacks=[ReconstructionImages(tmp_path, images)])
    assert int(model.optimizer.iterations) == 0 and not any(tmp_path.iterdir())
    # Without prior samples it trains and draws.
    model.fit(images, epochs=1, verbose=0, callbacks=[ReconstructionImages(tmp_path, images, num_samples=0)])
    assert set(pictures(tmp_path)) == {"reconstructions"}


def test_images_of_five_or_two_channels_are_pictured_by_their_first(tmp_path, rgb_crops):
    """Five channels raised in PNG encoding after the first epoch; two were drawn as grey and alpha."""
    crops = rgb_crops[1][:16]
    for bands in (np.concatenate([crops, crops[..., :2]], axis=-1), crops[..., :2]):
        channels = bands.shape[-1]
        model = ConvAutoencoder(filters=(4, 2), image_shape=(32, 32, channels))
        model.compile(optimizer="adam")
        log_dir = tmp_path / str(channels)
        history = model.fit(bands, epochs=1, verbose=0, callbacks=[ReconstructionImages(log_dir, bands[:4])])
        assert len(history.history["loss"]) == 1
        grid = pictures(log_dir)["reconstructions"][0]
        assert grid.shape == (2 * 32, 4 * 32, 1)
        np.testing.assert_array_equal(grid[:32, :32, 0], crops[0, :, :, 0])


def test_large_images_are_encoded_a_few_at_a_time(tmp_path, rgb_crops, monkeypatch):
    """All 1,000 at once: the projector of 128x192 RGB images took 6.5 GB as training ended, 2.6 to train on."""
    import aekeras.models.base

    crops = rgb_crops[1][:10]
    monkeypatch.setattr(aekeras.models.base, "BATCH_VALUES", 4 * crops[0].size)
    model = ConvAutoencoder(filters=(4, 2), image_shape=(32, 32, 3))
    whole = np.asarray(model.encode(model.image_spec.to_model_scale(crops)))
    batches, encode = [], model.encode

    def spy(images, **conditions):
        batches.append(len(images))
        return encode(images, **conditions)

    monkeypatch.setattr(model, "encode", spy)
    codes = write_projector(model, tmp_path, crops)
    assert batches == [4, 4, 2]
    np.testing.assert_allclose(codes, whole.reshape(10, -1), atol=1e-6)


def test_a_sprite_of_pixels_is_shrunk_a_chunk_at_a_time_as_their_float_images(
    tmp_path, rgb_crops, monkeypatch
):
    """A float32 copy of all the images was made first: 3 GB for 1,000 RGB images of 512x512."""
    import aekeras.callbacks

    crops = rgb_crops[1][:10]
    monkeypatch.setattr(aekeras.callbacks, "SPRITE_CHUNK", 3)
    monkeypatch.setattr(aekeras.callbacks, "MAX_SPRITE_SIDE", 64)  # 4 columns of 16x16 thumbnails
    model = ConvAutoencoder(filters=(4, 2), image_shape=(32, 32, 3))
    sprites = []
    for name, images in (("pixels", crops), ("floats", crops / 255.0)):
        write_projector(model, tmp_path / name, images)
        sprites.append(tf.io.decode_png((tmp_path / name / "sprite.png").read_bytes()).numpy().astype(int))
    assert sprites[0].shape == (64, 64, 3)
    np.testing.assert_allclose(sprites[0], sprites[1], atol=1)
    last = tf.image.resize(crops[9:] / 255.0, (16, 16)).numpy()[0] * 255  # row 2, column 1
    np.testing.assert_allclose(sprites[0][32:48, 16:32], last, atol=1)
    # Upright images are shrunk by their height, the longer side, to fit the limit: 16x8 thumbnails.
    upright = crops[:, :, :16]
    model = ConvAutoencoder(filters=(4, 2), image_shape=(32, 16, 3))
    write_projector(model, tmp_path / "upright", upright)
    sprite = tf.io.decode_png((tmp_path / "upright" / "sprite.png").read_bytes()).numpy()
    assert sprite.shape == (4 * 16, 4 * 8, 3)
    config = (tmp_path / "upright" / "projector_config.pbtxt").read_text()
    (embedding,) = text_format.Parse(config, projector_config_pb2.ProjectorConfig()).embeddings
    assert list(embedding.sprite.single_image_dim) == [8, 16]  # width, then height
