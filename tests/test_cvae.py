import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import AutoencoderTestCase, mnist

from aekeras import export, onnx, serving, signatures, tflite
from aekeras.data import ImageSpec
from aekeras.models import ConditionalVAE


@pytest.fixture(scope="module")
def batch():
    images, labels = next(iter(mnist("test", limit=64, batch_size=64, labels=True)))
    return images.numpy(), labels.numpy()


@pytest.fixture(scope="module")
def trained():
    """A 2-D code conditional VAE trained briefly on real MNIST with its labels."""
    keras.utils.set_random_seed(0)
    model = ConditionalVAE(latent_dim=2, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(mnist("train", limit=12000, batch_size=128, labels=True), epochs=4, verbose=0)
    return model


class TestConditionalVAE(AutoencoderTestCase):
    def test_the_label_enters_both_encoder_and_decoder(self, batch):
        images, labels = batch
        model = ConditionalVAE(latent_dim=3, seed=0)
        assert model.num_classes == 10  # MNIST's spec
        other = (labels + 1) % 10
        assert not np.allclose(model.encode(images, labels=labels), model.encode(images, labels=other))
        codes = np.zeros((64, 3), np.float32)
        assert not np.allclose(model.decode(codes, labels=labels), model.decode(codes, labels=other))
        conv = ConditionalVAE(architecture="conv", latent_dim=3, seed=0)
        assert not np.allclose(conv.encode(images, labels=labels), conv.encode(images, labels=other))

    def test_samples_are_of_the_classes_asked_for(self, trained, mnist_train_small, mnist_test_arrays):
        from sklearn.linear_model import LogisticRegression

        train_images, train_labels = mnist_train_small
        classifier = LogisticRegression(max_iter=300).fit(
            train_images.reshape(len(train_images), -1), train_labels
        )
        test_images, test_labels = mnist_test_arrays
        reference = classifier.score(test_images[:2000].reshape(2000, -1), test_labels[:2000])
        asked = np.repeat(np.arange(10), 20)
        samples = np.asarray(trained.sample(200, labels=asked)).reshape(200, -1)
        # A digit classifier trained on real digits (86% on real test digits)
        # reads the class asked for in most samples (measured: 94%); a model
        # that ignored its labels would score about 10%.
        assert reference > 0.8 and classifier.score(samples, asked) > 0.8

    def test_the_true_label_makes_the_images_likelier(self, trained, batch):
        images, labels = batch
        binary = (np.random.default_rng(0).uniform(size=images.shape) < images).astype(np.float32)
        right = np.mean(trained.negative_log_likelihood(binary, 20, labels=labels))
        wrong = np.mean(trained.negative_log_likelihood(binary, 20, labels=(labels + 1) % 10))
        assert right < wrong - 5  # measured: 145.7 against 215.3 nats

    def test_serialization(self):
        self.run_serialization_test(ConditionalVAE(latent_dim=2, architecture="conv", num_classes=4))

    def test_saving(self, batch, tmp_path):
        images, labels = batch
        loaded = self.run_saving_test(ConditionalVAE(latent_dim=2, seed=0), (images, labels), tmp_path)
        assert loaded.num_classes == 10

    def test_fit_on_real_mnist_lowers_validation_loss(self):
        self.run_fit_test(
            ConditionalVAE(latent_dim=4, seed=0),
            mnist("train", limit=4096, batch_size=128, labels=True),
            mnist("test", limit=512, labels=True),
            epochs=2,
            val_rtol=0.02,
        )

    def test_any_image_shape_with_its_classes(self, tmp_path):
        from sklearn.datasets import load_sample_images

        # 24x20 RGB crops of scikit-learn's two photographs, labelled by photograph.
        photos = load_sample_images().images
        crops = [
            np.stack([p[y : y + 24, x : x + 20] for y in range(0, 400, 24) for x in range(0, 600, 20)])
            for p in photos
        ]
        images = (np.concatenate(crops) / 255.0).astype(np.float32)
        labels = np.repeat([0, 1], [len(c) for c in crops])
        spec = ImageSpec((24, 20, 3), num_classes=2)
        model = ConditionalVAE(architecture="conv", latent_dim=4, image_spec=spec, seed=0)
        assert model.likelihood == "gaussian"
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        history = model.fit(images, labels, epochs=3, batch_size=64, verbose=0).history
        assert history["loss"][-1] < history["loss"][0]
        assert np.asarray(model.sample(3, labels=[0, 1, 1])).shape == (3, 24, 20, 3)
        version = export.saved_model(model, tmp_path, "crops")
        got = serving.LocalServer(version).predict(images=images[:4], labels=labels[:4])
        np.testing.assert_allclose(
            got["reconstruction"], model.reconstruct(images[:4], labels=labels[:4]), atol=1e-5
        )
        # LiteRT at this shape, against the SavedModel, on both photographs' crops.
        runner = tflite.Runner(tflite.convert(version, "none"))
        chosen = np.r_[0:32, len(images) - 32 : len(images)]
        server = serving.LocalServer(version)
        differences = signatures.max_differences(
            server.model, runner, images[chosen], "LiteRT", labels=labels[chosen]
        )
        assert max(max(d.values()) for d in differences.values()) < 1e-4

    def test_predict_takes_the_labelled_batches_fit_takes(self, trained):
        test = mnist("test", limit=300, batch_size=128, labels=True)
        batches = [(x.numpy(), y.numpy()) for x, y in test]
        images, labels = (np.concatenate(parts) for parts in zip(*batches, strict=True))
        expected = trained.reconstruct(images, labels=labels)
        np.testing.assert_allclose(trained.predict(test, verbose=0), expected, atol=1e-6)
        np.testing.assert_allclose(trained.predict([images, labels], verbose=0), expected, atol=1e-6)
        # Keras's batches for a model of two inputs, ((images, labels), targets), read the same.
        paired = test.map(lambda x, y: ((x, y), x))
        np.testing.assert_allclose(trained.predict(paired, verbose=0), expected, atol=1e-6)
        as_pairs = trained.evaluate(test, verbose=0, return_dict=True)  # the same draws every call
        assert trained.evaluate(paired, verbose=0, return_dict=True) == as_pairs
        with pytest.raises(
            TypeError, match=r"ConditionalVAE takes \(images, labels\), labels one int class index"
        ):
            trained(images)

    def test_bad_labels_and_arguments(self, batch):
        images, labels = batch
        model = ConditionalVAE(latent_dim=2)
        model.compile(optimizer="adam")
        with pytest.raises(ValueError, match=r"trains on \(images, labels\) batches"):
            model.fit(images, epochs=1, verbose=0)
        with pytest.raises(ValueError, match="needs labels"):
            model.encode(images)
        # The pair call takes: here it failed in NumPy ("non-rectangular Python sequence").
        with pytest.raises(TypeError, match=r"takes the inputs alone here and their labels as labels="):
            model.encode((images, labels))
        with pytest.raises(ValueError, match="needs one label per example: 64, got shape"):
            model.reconstruct(images, labels=labels[:3])
        # Past the last class, and before the first: checked before the gather, which on a GPU
        # would give zeros (a blank condition) where on a CPU it fails.
        for label in (10, -1):
            with pytest.raises(
                tf.errors.InvalidArgumentError,
                match=rf"ConditionalVAE takes labels from 0 to 9; got labels from {label} to {label}",
            ):
                model.encode(images, labels=np.full(64, label))

        @tf.function
        def decoded(labels):
            return model.decode(tf.zeros((2, 2)), labels=labels)

        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=r"takes labels from 0 to 9; got labels from\] \[3\] \[to\] \[12\]",
        ):
            decoded(tf.constant([3, 12]))
        for bad in (np.full(64, 10), np.full(64, 0.5)):
            with pytest.raises(ValueError, match=r"takes labels as int class indices from 0 to 9, got"):
                model.reconstruct(images, labels=bad)
        with pytest.raises(ValueError, match="needs one label per example: 2, got none"):
            model.interpolate(images[0], images[1])
        with pytest.raises(ValueError, match=r"trains on \(images, labels\) batches"):
            model.fit(images, labels + 0.7, epochs=1, verbose=0)  # float labels are not truncated
        with pytest.raises(ValueError, match="needs data with class labels .*, or num_classes="):
            ConditionalVAE(image_spec=ImageSpec((8, 8, 1)))
        with pytest.raises(ValueError, match="differs from image_spec's 10"):
            ConditionalVAE(num_classes=3, image_spec=ImageSpec((28, 28, 1), num_classes=10))
        assert ConditionalVAE(num_classes=3).image_spec.num_classes == 3


def test_every_signature_takes_labels_and_every_format_agrees(exported_models, digits, mnist_test_arrays):
    model, version = exported_models[1]["cvae"]
    labels = mnist_test_arrays[1][: len(digits)]
    server = serving.LocalServer(version)
    contract = server.contract
    for name in ("serving_default", "encode", "decode", "sample"):
        assert signatures.takes_labels(contract, name)
    got = server.predict(images=digits[:8], labels=labels[:8])
    np.testing.assert_allclose(
        got["reconstruction"], model.reconstruct(digits[:8], labels=labels[:8]), atol=1e-5
    )
    sevens = server.predict("sample", labels=np.full(5, 7, np.int32))["images"]
    again = server.predict("sample", labels=np.full(5, 7, np.int32))["images"]
    assert sevens.shape == (5, 28, 28, 1) and not np.allclose(sevens, again)  # fresh draws
    with pytest.raises(serving.ServingError, match="labels: int32"):
        server.predict(images=digits[:8])
    with pytest.raises(serving.ServingError, match="different sizes"):
        server.predict(images=digits[:8], labels=labels[:3])
    with pytest.raises(serving.ServingError, match="expects labels from 0 to 9; got values from -1 to"):
        server.predict(images=digits[:2], labels=[3, -1])
    # Past the last class: the export itself refuses (TensorFlow's gather).
    with pytest.raises(tf.errors.InvalidArgumentError):
        server.model.signatures["serving_default"](
            images=tf.constant(digits[:2]), labels=tf.constant([3, 10])
        )
    # Requests built without the export's contract are checked as every conditioned export's.
    body = serving.rest_request(images=digits[:2], labels=labels[:2])
    assert [sorted(row) for row in body["instances"]] == [["images", "labels"]] * 2
    assert serving.rest_request("sample", labels=[3, 4])["instances"] == [{"labels": 3}, {"labels": 4}]
    with pytest.raises(serving.ServingError, match="different sizes"):
        serving.rest_request(images=digits[:2], labels=labels[:3])
    dirty = digits[:3].copy()
    dirty[1, 3, 3, 0] = np.nan
    with pytest.raises(serving.ServingError, match=r"NaN or infinite values in images \(1 of 3 examples\)"):
        server.predict(images=dirty, labels=labels[:3])
    runner = tflite.Runner(tflite.convert(version, "none"))
    onnx.convert(version)
    for differences in (
        signatures.max_differences(server.model, runner, digits, "LiteRT", labels=labels),
        onnx.max_differences(version, digits, labels=labels),
    ):
        assert set(differences) == {"serving_default", "encode", "decode"}
        assert max(max(d.values()) for d in differences.values()) < 1e-4
    assert runner("sample", labels=np.arange(3, dtype=np.int32))["images"].shape == (3, 28, 28, 1)
    # The runners read the class count from the export the files lie in, as LocalServer does:
    # LiteRT failed natively ("gather index out of bounds"), onnxruntime too, with a log line.
    for runtime in (runner, onnx.Runner(version)):
        with pytest.raises(
            serving.ServingError, match="expects labels from 0 to 9; got values from 10 to 10"
        ):
            runtime("decode", latent=np.zeros((1, 4), np.float32), labels=np.array([10], np.int32))
    int8 = tflite.convert(version, "int8", images=digits[:100], labels=labels[:100])
    assert tflite.Runner(int8).reconstruction_mse(digits, labels=labels) < 1.1 * serving.reconstruction_mse(
        server, digits, labels=labels
    )
