"""A variant outside the package, as a user writes one: every front end takes it as it takes the built-in models.

Its options on the command line, its model files in a fresh process, and
the signatures it adds in every export format and request check.
"""

import argparse
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_registry import installed_toy_variant

import aekeras
from aekeras import export, onnx, registry, serving, signatures, tflite
from aekeras.cli import build_parser
from aekeras.cli.common import UsageError
from aekeras.registry import Option

TRAVERSAL_STEPS = 5


@keras.saving.register_keras_serializable(package="test_variants")
class ExploringVAE(aekeras.models.VAE):
    """A VAE serving what a user explores a code with: tempered samples, blends and one code's traversal."""

    def input_value_counts(self):
        return {**super().input_value_counts(), "dimension": self.latent_dim}

    def serving_endpoints(self):
        found = dict(super().serving_endpoints())
        images = tf.TensorSpec((None, *self.image_shape), tf.float32)

        def sample_tempered(num_samples, temperature):
            return {"images": self.decode(tf.random.normal((num_samples, self.latent_dim)) * temperature)}

        def blend(start, end):
            return {"blended": self.decode(0.5 * (self.encode(start) + self.encode(end)))}

        def traverse(images, dimension):
            codes, mask = self.encode(images), tf.one_hot(dimension, self.latent_dim)
            rows = [
                codes * (1 - mask) + v * mask for v in np.linspace(-2, 2, TRAVERSAL_STEPS, dtype=np.float32)
            ]
            return {"traversals": tf.stack([self.decode(row) for row in rows], axis=1)}

        found["sample_tempered"] = (
            sample_tempered,
            {
                "num_samples": tf.TensorSpec((), tf.int32, name="num_samples"),
                "temperature": tf.TensorSpec((), tf.float32, name="temperature"),
            },
        )
        found["blend"] = (blend, {"start": images, "end": images})
        found["traverse"] = (traverse, {"images": images, "dimension": tf.TensorSpec((), tf.int32)})
        return found


@pytest.fixture(scope="module")
def exploring_export(tmp_path_factory, mnist_train_small):
    keras.utils.set_random_seed(0)
    model = ExploringVAE(latent_dim=4, hidden_dims=(64,), seed=0)
    model.compile(optimizer="adam")
    model.fit(mnist_train_small[0][:2048], epochs=1, batch_size=128, verbose=0)
    return export.saved_model(model, tmp_path_factory.mktemp("saved_models"), "exploring")


def test_a_variants_scalar_index_takes_zero_and_stops_at_its_count(exploring_export, digits):
    server = serving.LocalServer(exploring_export)
    first = server.predict("traverse", images=digits[:2], dimension=0)["traversals"]
    assert first.shape == (2, TRAVERSAL_STEPS, 28, 28, 1)
    # The code's first value, -2 to 2 along the row: the decoded images differ.
    assert np.abs(first[:, 0] - first[:, -1]).max() > 1e-3
    with pytest.raises(serving.ServingError, match="expects dimension from 0 to 3; got values from 4 to 4"):
        server.predict("traverse", images=digits[:2], dimension=4)
    # A count still starts at 1.
    with pytest.raises(serving.ServingError, match="expects num_samples from 1 to"):
        server.predict("sample_tempered", num_samples=0, temperature=0.5)


def test_a_variants_own_signatures_convert_and_compare_in_litert_and_onnx(exploring_export, digits):
    saved_model = tf.saved_model.load(str(exploring_export))
    assert [
        name
        for name in sorted(saved_model.signatures)
        if signatures.draws_random_numbers(saved_model.signatures[name])
    ] == ["sample", "sample_tempered"]
    images = digits[:64]
    path = tflite.convert(exploring_export, "none")
    compared = tflite.max_differences(path, images)
    # Fresh draws are not compared value by value; the blend of two images and the traversal are.
    assert sorted(compared) == ["blend", "decode", "encode", "serving_default", "traverse"]
    assert max(d for outputs in compared.values() for d in outputs.values()) < 1e-4
    int8 = tflite.convert(exploring_export, "int8", images=digits[:100])
    assert tflite.Runner(int8)("blend", start=images[:2], end=images[2:4])["blended"].shape == (2, 28, 28, 1)
    onnx.convert(exploring_export)
    compared = onnx.max_differences(exploring_export, images)
    assert sorted(compared) == ["blend", "decode", "encode", "serving_default", "traverse"]
    assert max(d for outputs in compared.values() for d in outputs.values()) < 1e-4


def test_a_variants_signature_without_the_contract_asks_for_it():
    with pytest.raises(
        serving.ServingError, match=r"pass the export's own contract \(contract=serving.load_contract"
    ):
        serving.rest_request("blend", start=np.zeros((1, 28, 28, 1)), end=np.zeros((1, 28, 28, 1)))


def test_a_signature_onnx_cannot_name_is_refused_in_one_line(tmp_path, digits):
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32, name="images")])
        def sharpen(self, images):
            return {"images": tf.clip_by_value(2.0 * images - 0.5, 0.0, 1.0)}

    module = Module()
    version_dir = tmp_path / "sharpen" / "1"
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.sharpen})
    assert (
        tf.saved_model.load(str(version_dir)).signatures["serving_default"](images=digits[:1])["images"].shape
    )
    with pytest.raises(
        ValueError, match="signature 'serving_default' has an input and an output both named 'images'"
    ):
        onnx.convert(version_dir)
    assert not onnx.onnx_dir(version_dir).exists()


def _laplace_vae(image_spec=None, likelihood="laplace", latent_dim=2, sharp=True):
    return aekeras.models.VAE(latent_dim=latent_dim, image_spec=image_spec)


def test_an_option_several_models_take_accepts_each_ones_values(monkeypatch):
    registry.load_plugins()
    entry = registry.ModelEntry(
        "laplace",
        _laplace_vae,
        (
            Option("likelihood", str, "laplace", "p(x|z)", ("gaussian", "laplace")),
            Option("latent_dim", int, 2, "code size, 0 for none", minimum=0),
            Option("sharp", bool, True, "sharpen the decoder's output"),
        ),
        "a variant whose options share names with the VAE's",
    )
    monkeypatch.setitem(registry._REGISTRY, "laplace", entry)
    parser = build_parser()
    args = parser.parse_args(
        ["train", "laplace", "--likelihood", "laplace", "--latent-dim", "0", "--no-sharp"]
    )
    assert (args.likelihood, args.latent_dim, args.sharp) == ("laplace", 0, False)
    assert registry.get_model("laplace").split_options({"likelihood": "laplace", "latent_dim": 0})[0] == {
        "likelihood": "laplace",
        "latent_dim": 0,
        "sharp": True,
    }
    # Each model still takes only its own values.
    with pytest.raises(ValueError, match="the vae model takes likelihood auto, bernoulli, .*got 'laplace'"):
        registry.get_model("vae").split_options({"likelihood": "laplace"})
    with pytest.raises(ValueError, match="latent_dim must be an integer of at least 1, got 0"):
        registry.get_model("vae").split_options({"latent_dim": 0})
    with pytest.raises(UsageError, match="invalid choice: 'poisson'"):
        parser.parse_args(["train", "vae", "--likelihood", "poisson"])
    # A flag no model turns on by default stays a plain flag.
    assert isinstance(
        next(
            a
            for a in parser._subparsers._group_actions[0].choices["train"]._actions
            if "--binarize" in a.option_strings
        ),
        argparse._StoreTrueAction,
    )


def test_an_installed_variant_loads_in_a_fresh_process_and_keeps_the_command_quiet(tmp_path, digits_npz):
    env = installed_toy_variant(tmp_path)

    def run(*args):
        return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    # The variant's module imports Keras, so TensorFlow loads with it: its log lines stay hidden.
    shown = run(sys.executable, "-m", "aekeras", "train", "--help")
    assert shown.returncode == 0 and "l1" in shown.stdout and shown.stderr == "", shown.stderr
    trained = run(
        sys.executable, "-m", "aekeras", "train", "l1", "--data", str(digits_npz), "--epochs", "1", "--quiet"
    )
    assert trained.returncode == 0, trained.stderr
    loaded = run(
        sys.executable,
        "-c",
        "import aekeras.models; model = aekeras.models.load_model('runs/l1/model.keras'); "
        "print(type(model).__name__, model.latent_dim)",
    )
    assert loaded.returncode == 0 and loaded.stdout.split() == ["L1Autoencoder", "3"], loaded.stderr
