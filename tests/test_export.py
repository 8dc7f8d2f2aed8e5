import json
import os
import shutil
import signal
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_case import IMAGE_ONLY_NAMES, mnist

from aekeras import export, onnx, tflite
from aekeras.models import Autoencoder, DenseAutoencoder
from aekeras.signatures import ServingError


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


def test_flat_input_models_take_flat_inputs(tmp_path, images):
    # The signature's shape is the model's own: no silent reshape.
    model = DenseAutoencoder(
        latent_dim=4, image_shape=(784,), output_activation="sigmoid", value_range=(0, 1)
    )
    path = export.saved_model(model, tmp_path, "flat")
    serve = tf.saved_model.load(str(path), tags=["serve"]).signatures["serving_default"]
    flat = images.reshape(-1, 784)
    np.testing.assert_allclose(serve(images=tf.constant(flat))["reconstruction"], model(flat), atol=1e-5)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError)):
        serve(images=tf.constant(images))


def test_failed_export_leaves_nothing(tmp_path):
    class Unexportable(Autoencoder):
        def encode(self, inputs, training=False):
            raise RuntimeError("cannot trace")

    encoder = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)])
    decoder = keras.Sequential([keras.layers.Dense(784), keras.layers.Reshape((28, 28, 1))])
    with pytest.raises(RuntimeError, match="cannot trace"):
        export.saved_model(Unexportable(encoder, decoder), tmp_path / "saved_models", "broken")
    assert list(tmp_path.iterdir()) == []  # not even the folders it made for the version
    # Folders that were there before are kept, with what they hold.
    (tmp_path / "saved_models/broken").mkdir(parents=True)
    (tmp_path / "saved_models/broken/README").write_text("a user's own file")
    with pytest.raises(RuntimeError, match="cannot trace"):
        export.saved_model(Unexportable(encoder, decoder), tmp_path / "saved_models", "broken")
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")] == [
        "saved_models",
        "saved_models/broken",
        "saved_models/broken/README",
    ]


def test_sample_draws_afresh_in_every_server_though_training_was_seeded(tmp_path):
    """`aekeras train` seeds TensorFlow; the served `sample` must not replay one fixed sequence."""
    from aekeras.models import VAE

    keras.utils.set_random_seed(0)
    path = export.saved_model(VAE(latent_dim=2, hidden_dims=(8,), seed=0), tmp_path, "vae")
    first, second = (tf.saved_model.load(str(path), tags=["serve"]) for _ in range(2))
    count = tf.constant(4)
    draws = [server.signatures["sample"](num_samples=count)["images"].numpy() for server in (first, second)]
    assert not np.allclose(draws[0], draws[1])  # two servers loading the same version
    # The process's own seed is as it was: the same ops draw the same values after it is set again.
    keras.utils.set_random_seed(0)
    seeded = tf.random.normal((3,)).numpy()
    keras.utils.set_random_seed(0)
    np.testing.assert_array_equal(tf.random.normal((3,)).numpy(), seeded)


def test_op_determinism_does_not_stop_the_export_of_a_model_that_samples(tmp_path):
    """Under TF_DETERMINISTIC_OPS=1 TensorFlow refused to trace `sample`'s unseeded draw: a RuntimeError."""
    from tensorflow.python.framework import config

    from aekeras.models import VAE

    model = VAE(latent_dim=2, hidden_dims=(8,), seed=0)
    tf.config.experimental.enable_op_determinism()
    try:
        export.saved_model(model, tmp_path, "vae")
        # A second version: its contract, traced to check it against the first's, draws too.
        path = export.saved_model(model, tmp_path, "vae")
        assert config.is_op_determinism_enabled()  # the process's own setting, as it was
    finally:
        config.disable_op_determinism()
    server = tf.saved_model.load(str(path), tags=["serve"])
    assert server.signatures["sample"](num_samples=tf.constant(3))["images"].shape == (3, 28, 28, 1)


def test_a_stray_entry_named_as_a_version_is_named_not_loaded(tmp_path):
    from aekeras.errors import ModelFileError
    from aekeras.serving import LocalServer

    model = DenseAutoencoder(latent_dim=4)
    export.saved_model(model, tmp_path, "dense")
    (tmp_path / "dense" / "7").write_text("")  # TF Serving would take it for version 7
    message = rf"{tmp_path}/dense/7: no SavedModel \(saved_model.pb\) there, yet TF Serving would take it"
    with pytest.raises(ModelFileError, match=message):
        export.saved_model(model, tmp_path, "dense")
    with pytest.raises(ModelFileError, match=message):
        LocalServer(tmp_path / "dense")
    assert export.versions(tmp_path / "dense") == [1, 7]  # nothing published


def test_a_version_folder_is_named_as_it_is_on_disk(tmp_path):
    """TF Serving reads `03` as version 3: it is served, and named by its own name."""
    from aekeras.errors import ModelFileError
    from aekeras.serving import LocalServer

    model = DenseAutoencoder(latent_dim=4)
    export.saved_model(model, tmp_path, "dense")
    (tmp_path / "dense" / "1").rename(tmp_path / "dense" / "03")
    assert export.latest_version(tmp_path / "dense") == tmp_path / "dense" / "03"
    assert LocalServer(tmp_path / "dense").path == tmp_path / "dense" / "03"
    assert export.saved_model(model, tmp_path, "dense") == tmp_path / "dense" / "4"
    (tmp_path / "dense" / "09").write_text("")
    with pytest.raises(ModelFileError, match=rf"^{tmp_path}/dense/09: no SavedModel"):
        LocalServer(tmp_path / "dense")
    (tmp_path / "dense" / "09").unlink()
    (tmp_path / "dense" / "\u00b2").mkdir()  # a superscript two: a digit to str.isdigit, not a version
    assert export.versions(tmp_path / "dense") == [3, 4]


def test_a_folder_tensorflow_cannot_load_an_export_back_from_is_refused(tmp_path):
    """TensorFlow finds the variables by a file pattern of the path: under `a\\b` or `v[1]` no load found them."""
    from aekeras.errors import ModelFileError
    from aekeras.serving import LocalServer

    model = DenseAutoencoder(latent_dim=4)
    for out in (tmp_path / "a\\b", tmp_path / "v[1]"):
        with pytest.raises(
            ModelFileError, match="TensorFlow cannot read a SavedModel back from a path holding"
        ):
            export.saved_model(model, out, "dense")
        assert not out.exists()
    version = export.saved_model(model, tmp_path / "a[b", "dense")  # no set of characters: read back
    assert LocalServer(version).contract.value_counts == {}
    shutil.copytree(version, tmp_path / "v[1]")  # an export moved there: one line, not a traceback
    with pytest.raises(ModelFileError, match=r"v\[1\]: TensorFlow cannot read a SavedModel back"):
        LocalServer(tmp_path / "v[1]")


def test_only_aekeras_autoencoders_are_exported(tmp_path):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    with pytest.raises(TypeError, match="^expected an aekeras autoencoder .* to export, got Sequential$"):
        export.saved_model(plain, tmp_path, "plain")
    assert not any(tmp_path.iterdir())


def test_a_codebook_or_class_count_is_part_of_the_contract(tmp_path):
    """Indices or labels a client sent yesterday must not start failing under the same name."""
    from aekeras.errors import ContractChangeError
    from aekeras.models import VQVAE, ConditionalVAE
    from aekeras.serving import LocalServer
    from aekeras.signatures import Contract

    small = dict(filters=(4, 8), embedding_dim=4, image_shape=(8, 8, 1))
    version = export.saved_model(VQVAE(num_embeddings=16, **small), tmp_path, "vq")
    with pytest.raises(ContractChangeError, match=r"indices takes 16 values -> 8"):
        export.saved_model(VQVAE(num_embeddings=8, **small), tmp_path, "vq")
    server = LocalServer(tmp_path / "vq")
    assert server.contract.value_counts == {"indices": 16}
    indices = np.full((1, 2, 2), 15, np.int32)
    assert server.predict("decode_indices", indices=indices)["images"].shape == (1, 8, 8, 1)
    with pytest.raises(ServingError, match="expects indices from 0 to 15; got values from 15 to 16"):
        server.predict("decode_indices", indices=np.concatenate([indices, indices + 1]))
    assert export.versions(tmp_path / "vq") == [1] and version.name == "1"
    changes = Contract.for_model(ConditionalVAE(num_classes=10)).differences(
        Contract.for_model(ConditionalVAE(num_classes=5))
    )
    assert changes == ["labels takes 10 values -> 5"]


def test_bad_model_name(tmp_path):
    with pytest.raises(ValueError, match="model name '../x' must be letters"):
        export.saved_model(DenseAutoencoder(), tmp_path, "../x")


def keras_outputs(model, images):
    """What every signature should answer, computed with the Keras model."""
    low, high = model.value_range
    scaled = images * (high - low) + low
    latent = model.encode(scaled).numpy()
    reconstruction = (model(scaled).numpy() - low) / (high - low)
    return latent, reconstruction


@pytest.mark.parametrize("name", IMAGE_ONLY_NAMES)
def test_every_model_answers_every_signature_by_name(exported_models, digits, name):
    _, exported = exported_models
    model, path = exported[name]
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    images = tf.constant(digits[:16])
    latent, reconstruction = keras_outputs(model, digits[:16])
    served = loaded.signatures["serving_default"](images=images)
    np.testing.assert_allclose(served["reconstruction"], reconstruction, atol=1e-5)
    encoded = loaded.signatures["encode"](images=images)
    np.testing.assert_allclose(encoded["latent"], latent, atol=1e-5)
    decoded = loaded.signatures["decode"](latent=encoded["latent"])["images"]
    np.testing.assert_allclose(decoded, reconstruction, atol=1e-5)
    if name in ("vae", "iwae"):
        z_mean, z_log_var = model.encode_distribution(digits[:16])
        np.testing.assert_allclose(encoded["z_mean"], z_mean, atol=1e-5)
        np.testing.assert_allclose(encoded["z_log_var"], z_log_var, atol=1e-5)
        first = loaded.signatures["sample"](num_samples=tf.constant(5))["images"].numpy()
        second = loaded.signatures["sample"](num_samples=tf.constant(5))["images"].numpy()
        assert first.shape == (5, 28, 28, 1) and not np.array_equal(first, second)
        assert first.min() >= 0 and first.max() <= 1
    elif name == "vqvae":
        assert set(loaded.signatures) == {"serving_default", "encode", "decode", "decode_indices"}
        indices = encoded["indices"].numpy()
        np.testing.assert_array_equal(indices, model.encode_indices(digits[:16]))
        assert indices.dtype == np.int32 and indices.shape == (16, 7, 7)
        from_indices = loaded.signatures["decode_indices"](indices=tf.constant(indices))["images"]
        np.testing.assert_allclose(from_indices, reconstruction, atol=1e-5)
    else:
        assert set(loaded.signatures) == {"serving_default", "encode", "decode"}


def test_models_config_lists_every_model(exported_models):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    out, exported = exported_models
    path = export.write_models_config(out, base_path="/models")
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    entries = {c.name: (c.base_path, c.model_platform) for c in config.model_config_list.config}
    assert entries == {name: (f"/models/{name}", "tensorflow") for name in exported}

    def written(base_path=None):
        text = export.write_models_config(out, base_path).read_text()
        return [
            c.base_path
            for c in text_format.Parse(
                text, model_server_config_pb2.ModelServerConfig()
            ).model_config_list.config
        ]

    # A later export or run, which passes no serving root, keeps the one given.
    assert written() == [f"/models/{name}" for name in sorted(exported)]
    path.unlink()
    assert written()[0] == str((out / "contractive").absolute())  # none given yet: where `out` is


def test_models_config_keeps_what_a_user_added_to_it(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    for name in ("dense", "retired"):
        export.saved_model(DenseAutoencoder(latent_dim=4), tmp_path, name)
    path = export.write_models_config(tmp_path, "/models")
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    (dense,) = [entry for entry in config.model_config_list.config if entry.name == "dense"]
    dense.model_version_policy.specific.versions.append(1)
    dense.version_labels["stable"] = 1
    other = config.model_config_list.config.add(name="resnet", base_path="/elsewhere/resnet")
    other.model_platform = "tensorflow"
    path.write_text(text_format.MessageToString(config))

    for version in (tmp_path / "retired").iterdir():
        shutil.rmtree(version)
    export.saved_model(DenseAutoencoder(latent_dim=4), tmp_path, "dense")
    kept = text_format.Parse(
        export.write_models_config(tmp_path).read_text(), model_server_config_pb2.ModelServerConfig()
    )
    entries = {entry.name: entry for entry in kept.model_config_list.config}
    # The pin and label stay with version 1, the other model stays, the removed one goes.
    assert sorted(entries) == ["dense", "resnet"]
    assert list(entries["dense"].model_version_policy.specific.versions) == [1]
    assert dict(entries["dense"].version_labels) == {"stable": 1}
    assert (
        entries["dense"].base_path == "/models/dense" and entries["resnet"].base_path == "/elsewhere/resnet"
    )


def test_a_contract_published_while_an_export_was_written_is_checked_again(tmp_path, monkeypatch):
    """Two exporters of one new name both passed the first check: the name served two contracts."""
    from aekeras.errors import ContractChangeError

    build_archive, others = export.build_archive, [DenseAutoencoder(latent_dim=4)]

    def another_exporter_publishes_meanwhile(model):
        if others:
            export.saved_model(others.pop(), tmp_path, "shared")
        return build_archive(model)

    monkeypatch.setattr(export, "build_archive", another_exporter_publishes_meanwhile)
    with pytest.raises(ContractChangeError, match=r"shared/1 serves other signatures than this model"):
        export.saved_model(DenseAutoencoder(latent_dim=8), tmp_path, "shared")
    assert export.versions(tmp_path / "shared") == [1] and [
        p.name for p in (tmp_path / "shared").iterdir()
    ] == ["1"]


def test_a_poller_sees_only_complete_versions(tmp_path, monkeypatch):
    """TF Serving polls the model folder; every version it can see must load."""
    import threading
    import time

    # The poller below sees a half-copied version only if it looks at that moment (a copy in
    # place of the rename was caught in 1 run of 3); the folder's inode says it every time.
    moved_whole, take_next_version = [], export._take_next_version

    def taking_next_version(staging, model_dir):
        staged = staging.stat().st_ino
        version_dir = take_next_version(staging, model_dir)
        moved_whole.append(version_dir.stat().st_ino == staged)
        return version_dir

    monkeypatch.setattr(export, "_take_next_version", taking_next_version)
    model = DenseAutoencoder(latent_dim=8)
    seen, problems, done = set(), [], threading.Event()

    def poll():
        while not done.is_set() or len(seen) < 3:
            for version in export.versions(tmp_path / "dense"):
                if version in seen:
                    continue
                path = tmp_path / "dense" / str(version)
                try:
                    tf.saved_model.load(str(path), tags=["serve"]).signatures["serving_default"]
                    seen.add(version)
                except Exception as e:  # noqa: BLE001 - any failure is a half-written version
                    problems.append(f"version {version}: {type(e).__name__}: {e}")
                    return
            if done.is_set() and len(seen) >= 3:
                return
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for _ in range(3):
            export.saved_model(model, tmp_path, "dense")
    finally:
        done.set()
        poller.join(timeout=120)
    assert problems == []
    assert seen == {1, 2, 3}
    assert moved_whole == [True] * 3  # each version is its staging folder, renamed into place


def run_saved_model_cli(*args):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    cli = shutil.which("saved_model_cli", path=str(Path(sys.executable).parent)) or "saved_model_cli"
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=300)


def test_saved_model_cli_shows_and_runs_the_export(exported_models, digits, tmp_path):
    _, exported = exported_models
    model, path = exported["dense"]
    shown = run_saved_model_cli("show", "--all", "--dir", str(path))
    assert shown.returncode == 0, shown.stderr
    for line in (
        "signature_def['serving_default']",
        "inputs['images'] tensor_info",
        "outputs['reconstruction'] tensor_info",
        "outputs['score'] tensor_info",
        "signature_def['encode']",
        "signature_def['decode']",
        "shape: (-1, 28, 28, 1)",
    ):
        assert line in shown.stdout
    np.save(tmp_path / "digits.npy", digits[:8])
    ran = run_saved_model_cli(
        "run",
        "--dir",
        str(path),
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--inputs",
        f"images={tmp_path / 'digits.npy'}",
        "--outdir",
        str(tmp_path / "out"),
    )
    assert ran.returncode == 0, ran.stderr
    _, reconstruction = keras_outputs(model, digits[:8])
    np.testing.assert_allclose(np.load(tmp_path / "out" / "reconstruction.npy"), reconstruction, atol=1e-5)
    assert np.load(tmp_path / "out" / "score.npy").shape == (8,)


# Exports a model but hangs once the SavedModel is written, before publishing.
HANGING_EXPORT = """
import sys, time
from pathlib import Path
from aekeras import export
from aekeras.signatures import ServingError
from aekeras.models import DenseAutoencoder

build_archive = export.build_archive

def build_archive_that_hangs(model):
    archive = build_archive(model)
    write_out = archive.write_out

    def write_out_then_hang(filepath, **kwargs):
        write_out(filepath, **kwargs)
        Path(sys.argv[2]).touch()
        time.sleep(600)

    archive.write_out = write_out_then_hang
    return archive

export.build_archive = build_archive_that_hangs
export.saved_model(DenseAutoencoder(latent_dim=4), sys.argv[1], "dense")
"""


def test_a_killed_export_leaves_no_version_and_its_leftovers_are_removed(tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    import time

    written, model_dir = tmp_path / "written", tmp_path / "out" / "dense"
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", HANGING_EXPORT, str(tmp_path / "out"), str(written)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.time() + 120
            while not written.exists() and process.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            assert written.exists(), (tmp_path / "stderr").read_text()
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            process.kill()
            process.wait()
    assert export.versions(model_dir) == []
    (leftover,) = model_dir.iterdir()
    assert leftover.name.startswith(".staging-") and (leftover / "saved_model.pb").is_file()

    # Staging folders of a live export, or of another machine, are not touched.
    live = model_dir / f".staging-{socket.gethostname()}-{os.getpid()}-0"
    elsewhere = model_dir / ".staging-some-other-host-1-0"
    live.mkdir()
    elsewhere.mkdir()
    path = export.saved_model(DenseAutoencoder(latent_dim=4), tmp_path / "out", "dense")
    assert path == model_dir / "1"
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(["1", live.name, elsewhere.name])


@pytest.mark.parametrize("name", ["dense", "conv"])
def test_wrong_shapes_fail_at_the_signature_not_deep_inside(exported_models, name):
    # Before the EnsureShape check, a conv model's oneDNN kernel could abort
    # the whole process on a [n, 784] batch.
    _, exported = exported_models
    loaded = tf.saved_model.load(str(exported[name][1]), tags=["serve"])
    for wrong in (np.zeros((3, 784), np.float32), np.zeros((2, 27, 27, 1), np.float32)):
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError)):
            loaded.signatures["serving_default"](images=tf.constant(wrong))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError, TypeError)):
        loaded.signatures["decode"](latent=tf.zeros((2, 3)))


def _ctrl_c_dropped_by_a_finalizer():
    """A Ctrl-C landing in a finalizer, as in TensorFlow's while it converts: printed there and dropped."""

    class Finalized:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)

    Finalized()


# The dropped interrupt is what Python reports as unraisable: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    "module, step, convert",
    [
        (tflite, "_converter", tflite.convert),
        (onnx, "_convert_signature", onnx.convert),
        (
            export,
            "build_archive",
            lambda folder: export.saved_model(DenseAutoencoder(latent_dim=30), folder, "d"),
        ),
    ],
)
@pytest.mark.parametrize("dropped", [True, False], ids=["dropped", "pressed"])
def test_a_ctrl_c_while_converting_stops_the_conversion_before_it_writes(
    exported, tmp_path, monkeypatch, ctrl_c_at_its_default, module, step, convert, dropped
):
    """Dropped by a finalizer, it let the work run on; pressed, it is raised before the files are written.

    Not where it lands: raised inside TensorFlow's C code, a Ctrl-C once
    corrupted the heap and the process aborted.
    """
    version_dir = shutil.copytree(exported[2], tmp_path / "1")
    before = sorted(version_dir.iterdir())
    real = getattr(module, step)
    went_on = []

    def step_interrupted(*args, **kwargs):
        if dropped:
            _ctrl_c_dropped_by_a_finalizer()
        else:
            signal.raise_signal(signal.SIGINT)
            time.sleep(0.1)
        went_on.append(step)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, step, step_interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert(version_dir)
    assert went_on  # the step under way finished
    assert sorted(version_dir.iterdir()) == before  # nothing written, no staging folder left
    # The notebook goes on: the next call converts.
    monkeypatch.setattr(module, step, real)
    convert(version_dir)
    assert (
        len(list(version_dir.iterdir())) == len(before) + 1
    )  # the .tflite file, the onnx folder, the export


def test_a_ctrl_c_while_onnx_files_are_swapped_in_lets_the_swap_finish(
    exported, tmp_path, monkeypatch, ctrl_c_at_its_default
):
    version_dir = shutil.copytree(exported[2], tmp_path / "1")
    onnx.convert(version_dir)
    rename = os.replace

    def ctrl_c_after_the_old_files_moved(source, target):
        rename(source, target)
        if source == onnx.onnx_dir(version_dir):
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(os, "replace", ctrl_c_after_the_old_files_moved)
    paths = onnx.convert(version_dir)
    monkeypatch.setattr(os, "replace", rename)
    assert all(path.is_file() for path in paths.values())
    assert not [p for p in version_dir.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_max_differences_keeps_each_outputs_largest_over_every_batch(exported, images):
    """A difference in any batch counts, whatever its sign, for every output of every signature."""
    from aekeras.signatures import max_differences

    _, _, path = exported
    saved_model = tf.saved_model.load(str(path), tags=["serve"])
    calls = []

    def runner(name, **inputs):
        calls.append((name, len(next(iter(inputs.values())))))
        outputs = {key: value.numpy() for key, value in saved_model.signatures[name](**inputs).items()}
        batch = sum(called == name for called, _ in calls)
        if name == "serving_default" and batch == 1:  # the first batch only, pushed down
            outputs["reconstruction"][0, 3, 4, 0] -= 0.25
        if name == "decode":
            outputs["images"] = outputs["images"] + np.float32(0.125) * (batch == 2)  # the second batch only
        return outputs

    differences = max_differences(saved_model, runner, images, "fake", batch_size=10)
    assert differences["serving_default"]["reconstruction"] == pytest.approx(0.25, abs=1e-6)
    assert differences["serving_default"]["score"] < 1e-3
    assert differences["encode"] == {"latent": 0.0}
    assert differences["decode"]["images"] == pytest.approx(0.125, abs=1e-6)
    assert set(differences) == {"serving_default", "encode", "decode"}
    # 32 images in batches of 10: every image through every signature.
    assert sorted(calls) == sorted((name, n) for name in differences for n in (10, 10, 10, 2))
    # The reconstruction MSEs of those same calls: the format's with its pushed pixel, the SavedModel's score.
    reconstruction = saved_model.signatures["serving_default"](images=tf.constant(images))["reconstruction"]
    pushed = reconstruction.numpy()
    pushed[0, 3, 4, 0] -= 0.25
    expected = (np.mean((images - pushed) ** 2), np.mean((images - reconstruction.numpy()) ** 2))
    assert differences.reconstruction_mse == pytest.approx(expected, rel=1e-5)
    assert differences.reconstruction_mse[0] != differences.reconstruction_mse[1]


def test_max_differences_leaves_out_the_images_whose_codebook_picks_differ(tmp_path, images):
    """A VQ-VAE's image with a pick flipped in the other format is counted, not compared where images go in.

    Its flip moves its latent and reconstruction (as a real one does); a
    difference in an image whose picks agree still counts, and `decode`
    and `decode_indices`, given the SavedModel's codes, compare every image.
    """
    from aekeras.models import VQVAE
    from aekeras.signatures import max_differences

    path = export.saved_model(VQVAE(num_embeddings=16), tmp_path, "vq")
    saved_model = tf.saved_model.load(str(path), tags=["serve"])

    def runner(name, **inputs):
        outputs = {key: value.numpy() for key, value in saved_model.signatures[name](**inputs).items()}
        if name == "encode":
            outputs["indices"][5, 0, 0] = (outputs["indices"][5, 0, 0] + 1) % 16
            outputs["latent"][5, 0, 0] += 1.0
        if name == "serving_default":
            outputs["reconstruction"][5] += 0.5
            outputs["reconstruction"][7, 1, 1, 0] -= 0.25
        if name == "decode_indices":
            outputs["images"][5, 2, 2, 0] += 0.125
        return outputs

    differences = max_differences(saved_model, runner, images, "fake", batch_size=32)
    positions = saved_model.signatures["encode"](images=tf.constant(images))["indices"].shape
    assert differences.images_left_out == 1
    assert differences.picks_differ == pytest.approx(1 / np.prod(positions))
    assert differences["encode"]["latent"] == 0.0
    assert differences["serving_default"]["reconstruction"] == pytest.approx(0.25, abs=1e-6)
    assert differences["decode_indices"]["images"] == pytest.approx(0.125, abs=1e-6)
    assert set(differences) == {"serving_default", "encode", "decode", "decode_indices"}
    # The MSE is of every image, the one whose picks differ included.
    reconstruction = saved_model.signatures["serving_default"](images=tf.constant(images))[
        "reconstruction"
    ].numpy()
    changed = reconstruction.copy()
    changed[5] += 0.5
    changed[7, 1, 1, 0] -= 0.25
    expected = (np.mean((images - changed) ** 2), np.mean((images - reconstruction) ** 2))
    assert differences.reconstruction_mse == pytest.approx(expected, rel=1e-5)
