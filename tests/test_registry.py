"""The model registry: every front end reads it, and a new variant is one file plus its registration."""

import json
import os
import random
import subprocess
import sys

import keras
import numpy as np
import pytest

from aekeras import registry
from aekeras.data import ImageSpec

AEKERAS = [sys.executable, "-m", "aekeras"]

# A whole new variant, as a user would write it: one class and its registration.
TOY_VARIANT = '''
import keras
from keras import ops

from aekeras.models import blocks
from aekeras.models.base import BaseAutoencoder, resolve_image_spec
from aekeras.registry import Option, register_model


@keras.saving.register_keras_serializable(package="toy")
class L1Autoencoder(BaseAutoencoder):
    """A dense autoencoder trained on the mean absolute error."""

    config_fields = ("latent_dim",)

    def __init__(self, latent_dim=3, image_shape=None, value_range=None, image_spec=None, **kwargs):
        spec = resolve_image_spec(image_spec, image_shape, value_range, (0.0, 1.0))
        encoder = blocks.dense_encoder((), latent_dim, "relu", "relu", "glorot_uniform")
        decoder = blocks.dense_decoder(spec.shape, (), "relu", "sigmoid", "glorot_uniform")
        super().__init__(encoder, decoder, spec, **kwargs)
        self.latent_dim = latent_dim
        self.build((None, *self.image_shape))

    def compute_loss_terms(self, inputs, targets, training=False):
        reconstructions = self(inputs, training=training)
        errors = ops.reshape(ops.abs(targets - reconstructions), (ops.shape(targets)[0], -1))
        return {"reconstruction_loss": ops.mean(errors, axis=-1)}, reconstructions


register_model(
    "l1", lambda image_spec, latent_dim=3: L1Autoencoder(latent_dim=latent_dim, image_spec=image_spec),
    (Option("latent_dim", int, help="code size"),), "a toy variant",
)
'''


def test_every_built_in_model_is_registered_with_its_options():
    assert registry.model_names()[:8] == (
        "dense",
        "conv",
        "denoising",
        "contractive",
        "vae",
        "iwae",
        "vqvae",
        "cvae",
    )
    entry = registry.get_model("denoising")
    assert entry.defaults() == {
        "latent_dim": None,
        "architecture": "dense",
        "tied_weights": False,
        "noise": "dropout",
        "noise_level": 0.5,
    }
    options = registry.options_by_name()
    assert options["latent_dim"][1] == ["dense", "conv", "denoising", "contractive", "vae", "iwae", "cvae"]
    assert options["noise"][1] == ["denoising"]
    assert options["num_samples"][1] == ["iwae"] and options["binarize"][1] == ["vae", "iwae", "cvae"]
    with pytest.raises(ValueError, match="the dense model does not take noise"):
        registry.build_model("dense", None, noise="gaussian")
    with pytest.raises(ValueError, match="unknown model 'gan'"):
        registry.get_model("gan")
    # The lectures' setups are the defaults.
    model = registry.build_model("denoising", ImageSpec((28, 28, 1)), seed=7)
    assert (
        model.noise == "dropout"
        and model.seed == 7
        and model.get_config()["autoencoder"]["config"]["latent_dim"] == 500
    )


def test_onednn_is_asked_for_the_convolutional_models_only_and_never_over_the_users_setting():
    """Every model built with the architecture its options give has convolutions exactly where oneDNN is asked for."""
    on = {registry.ONEDNN_VARIABLE: "1"}
    for name in registry.model_names()[:8]:
        architectures = ("dense", "conv") if registry.get_model(name).option("architecture") else (None,)
        for architecture in architectures:
            options = {} if architecture is None else {"architecture": architecture}
            model = registry.build_model(name, ImageSpec((28, 28, 1), num_classes=10), **options)
            convolutional = any(isinstance(layer, keras.layers.Conv2D) for layer in _layers(model))
            expected = on if convolutional else {}
            assert registry.onednn_environment(name, options, {}) == expected, (name, architecture)
            assert registry.onednn_environment(name, options, {registry.ONEDNN_VARIABLE: "0"}) == {}
    # An option the model does not take is the command's to refuse.
    assert registry.onednn_environment("conv", {"architecture": "conv"}, {}) == {}


def _layers(layer):
    """`layer` and every layer inside it."""
    yield layer
    for inner in getattr(layer, "_layers", []):
        yield from _layers(inner)


def test_a_seed_fixes_the_initial_weights_and_leaves_every_other_draw_alone():
    state = random.getstate()
    first = registry.build_model("vae", None, seed=0).get_weights()
    assert random.getstate() == state
    again = registry.build_model("vae", None, seed=0).get_weights()
    other = registry.build_model("vae", None, seed=1).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
    # As `aekeras train` builds: its global reseeding changes nothing.
    keras.utils.set_random_seed(7)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(first, registry.build_model("vae", None, seed=0).get_weights(), strict=True)
    )


def installed_toy_variant(folder, source=TOY_VARIANT):
    """The environment of a process in which `source` (`TOY_VARIANT`) is installed, as pip installs a package in `folder`."""
    plugins = folder / "plugins"
    (plugins / "toy_variant-0.1.dist-info").mkdir(parents=True)
    (plugins / "toy_variant.py").write_text(source)
    # An installed package's entry point, as pip would write it.
    (plugins / "toy_variant-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-variant\nVersion: 0.1\n"
    )
    (plugins / "toy_variant-0.1.dist-info" / "entry_points.txt").write_text(
        "[aekeras.models]\nl1 = toy_variant\n"
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}


def test_a_new_variant_trains_exports_and_converts_from_the_command_line(tmp_path, digits_npz):
    env = installed_toy_variant(tmp_path)

    def run(*args):
        result = subprocess.run(
            [*AEKERAS, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    help_text = " ".join(run("train", "--help").split())
    assert (
        "{dense,conv,denoising,contractive,vae,iwae,vqvae,cvae,l1}" in help_text
        and "cvae 20, l1 3)" in help_text
    )
    run("train", "l1", "--latent-dim", "5", "--data", str(digits_npz), "--epochs", "2", "--quiet")
    record = json.loads((tmp_path / "saved_models/l1/1/run.json").read_text())
    assert record["model_config"]["latent_dim"] == 5 and record["image_spec"]["shape"] == [8, 8, 1]
    assert record["history"]["reconstruction_loss"][1] < record["history"]["reconstruction_loss"][0]
    converted = run("tflite", "saved_models/l1/1", "--quantize", "int8")
    assert "TFLite (int8): saved_models/l1/1/l1-int8.tflite" in converted


def test_a_variant_that_does_not_load_is_named_in_one_line_and_the_rest_work(tmp_path):
    """It was a traceback for every command, `--help` included, until the package was uninstalled."""
    env = installed_toy_variant(tmp_path, source="import a_dependency_not_installed\n")
    left_out = (
        "the installed variant 'l1' did not load and is left out "
        "(toy_variant: ModuleNotFoundError: No module named 'a_dependency_not_installed')"
    )
    result = subprocess.run(
        [*AEKERAS, "train", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stderr.splitlines() == [f"aekeras: warning: {left_out}"]
    assert "{dense,conv,denoising,contractive,vae,iwae,vqvae,cvae}" in " ".join(result.stdout.split())
    from_python = (
        "import warnings\n"
        "from aekeras import registry\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    assert registry.get_model('dense').name == 'dense'\n"
        "print([str(w.message) for w in caught if w.category is RuntimeWarning])\n"
        "registry.get_model('l1')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", from_python],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout.strip() == repr([left_out])
    assert result.stderr.splitlines()[-1] == f"ValueError: {left_out}"


def test_an_options_default_is_its_builders_own(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})

    def build(image_spec, latent_dim=7, hidden_dims=(64, 32), **kwargs):
        return None

    entry = registry.register_model(
        "toy",
        build,
        (
            registry.Option("latent_dim", int, help="code size"),
            registry.Option("hidden_dims", list, help="widths"),
            registry.Option("extra", float, 0.5, "through **kwargs, so the option gives it"),
        ),
    )
    assert entry.defaults() == {"latent_dim": 7, "hidden_dims": [64, 32], "extra": 0.5}
    # One home: an option may repeat the builder's default, never contradict it.
    registry.register_model("same", build, (registry.Option("latent_dim", int, 7, "code size"),))
    with pytest.raises(ValueError, match="option 'latent_dim' has default 30 where its builder has 7"):
        registry.register_model("other", build, (registry.Option("latent_dim", int, 30, "code size"),))
    with pytest.raises(ValueError, match="option 'extra' needs a default"):
        registry.register_model("bare", build, (registry.Option("extra", float, help="no default anywhere"),))
    with pytest.raises(ValueError, match="option 'latent_dim' needs a default"):
        registry.register_model(
            "evaluated",
            build,
            (registry.Option("latent_dim", int, help="read by evaluate", evaluation=True),),
        )
    with pytest.raises(ValueError, match="option 'width' is no argument of its builder"):
        registry.register_model(
            "strict", lambda image_spec, latent_dim=7: None, (registry.Option("width", int, 8, "not taken"),)
        )
    assert set(registry._REGISTRY) == {"toy", "same"}


@pytest.mark.parametrize(
    "model, options, message",
    [
        ("vae", {"nll_samples": -1}, "nll_samples must be an integer of at least 0, got -1"),
        ("vae", {"nll_samples": 2.5}, "nll_samples must be an integer of at least 0, got 2.5"),
        ("iwae", {"warmup_epochs": -2}, "warmup_epochs must be an integer of at least 0, got -2"),
        ("vqvae", {"num_embeddings": True}, "num_embeddings must be an integer of at least 1, got True"),
    ],
)
def test_integer_options_below_their_minimum_are_refused_before_anything_is_built(model, options, message):
    # From Python as from the command line, whose argument types say the same.
    with pytest.raises(ValueError, match=message):
        registry.get_model(model).split_options(options)
    assert (
        registry.get_model("iwae").split_options({"warmup_num_samples": None})[0]["warmup_num_samples"]
        is None
    )


def test_a_notebook_cell_that_registers_a_variant_runs_again(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})
    cell = (
        "from aekeras.registry import Option, register_model\n"
        "def build(image_spec=None, latent_dim={default}):\n"
        "    return latent_dim\n"
        "register_model('cell', build, (Option('latent_dim', int),))\n"
    )
    namespace = {"__name__": "__main__"}
    exec(cell.format(default=3), namespace)
    # Run again, edited: a new function of the same name replaces the first.
    exec(cell.format(default=5), namespace)
    assert registry.get_model("cell").defaults() == {"latent_dim": 5}
    # Another module's builder of the same name is still refused.
    with pytest.raises(ValueError, match="a model named 'cell' is already registered"):
        registry.register_model("cell", lambda image_spec=None: None)
