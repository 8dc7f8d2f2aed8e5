"""SavedModel export in the layout TF Serving watches.

`saved_model(model, out, name)` writes `out/name/<version>/`, versions
counting up from 1. Each version is written under a temporary name beside
the others and renamed into place only when complete, so a server polling
the folder never sees half a model, and an export that is killed leaves no
version behind: only its staging folder, which the next export on the same
machine removes. `write_models_config(out)` writes the TF Serving
`models.config` listing every model under `out`.
"""

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from aekeras.data import IMAGE_SHAPE
from aekeras.models import VAE

SETTINGS_FILE = "run.json"
MODELS_CONFIG_FILE = "models.config"


def versions(model_dir):
    """The integer version folders under `model_dir`, in increasing order."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def remove_stale_staging(model_dir):
    """Removes the staging folders of killed exports on this machine.

    A staging folder is named `.staging-<host>-<pid>-<random>`; one whose
    process is gone is removed. Folders of other machines (on a shared
    file system) and of running exports are left alone.
    """
    host = socket.gethostname()
    for path in Path(model_dir).glob(".staging-*"):
        owner, _, pid = path.name[len(".staging-") :].rpartition("-")[0].rpartition("-")
        if owner == host and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _to_model_scale(model, images):
    low, high = model.value_range
    return images * (high - low) + low


def _from_model_scale(model, values):
    low, high = model.value_range
    return (values - low) / (high - low)


def build_archive(model):
    """Returns a `keras.export.ExportArchive` with the serving signatures.

    Every signature takes and returns images as float32 `[batch, 28, 28, 1]`
    on the [0, 1] scale; any scaling the model needs happens inside.

    - `serving_default`: `images` -> `reconstruction`, and `score`, the
      per-example mean squared reconstruction error (for anomaly detection).
    - `encode`: `images` -> `latent` (for a VAE also `z_mean` and
      `z_log_var`; `latent` is `z_mean`).
    - `decode`: `latent` -> `images`.
    - For a VAE, `sample`: `num_samples` (int32 scalar) -> `images` decoded
      from fresh draws of the prior N(0, I).

    Every batch dimension is dynamic.
    """
    model_input_shape = (-1, *model.image_shape)
    latent_shape = model.code_shape((None, *model.image_shape))

    def model_inputs(images):
        # A wrong shape fails here, in one op, instead of deep in a layer
        # (where oneDNN convolutions can abort the whole server process).
        images = tf.ensure_shape(images, (None, *IMAGE_SHAPE))
        return _to_model_scale(model, tf.reshape(images, model_input_shape))

    def encode_images(images):
        return model.encode(model_inputs(images))

    def decode_latent(latent):
        latent = tf.ensure_shape(latent, latent_shape)
        decoded = _from_model_scale(model, model.decode(latent))
        return tf.reshape(decoded, (-1, *IMAGE_SHAPE))

    def serving_default(images):
        reconstruction = decode_latent(encode_images(images))
        score = tf.reduce_mean(tf.square(reconstruction - images), axis=[1, 2, 3])
        return {"reconstruction": reconstruction, "score": score}

    def encode(images):
        if isinstance(model, VAE):
            z_mean, z_log_var = model.encode_distribution(model_inputs(images))
            return {"latent": z_mean, "z_mean": z_mean, "z_log_var": z_log_var}
        return {"latent": encode_images(images)}

    def decode(latent):
        return {"images": decode_latent(latent)}

    images_spec = tf.TensorSpec((None, *IMAGE_SHAPE), tf.float32, name="images")
    latent_spec = tf.TensorSpec(latent_shape, tf.float32, name="latent")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serving_default, [images_spec])
    archive.add_endpoint("encode", encode, [images_spec])
    archive.add_endpoint("decode", decode, [latent_spec])
    if isinstance(model, VAE):

        def sample(num_samples):
            # TF's stateful op, not the model's SeedGenerator: every request
            # gets fresh draws, and TFLite has it as a builtin.
            z = tf.random.normal((num_samples, model.latent_dim))
            return {"images": decode_latent(z)}

        num_samples_spec = tf.TensorSpec((), tf.int32, name="num_samples")
        archive.add_endpoint("sample", sample, [num_samples_spec])
    return archive


def saved_model(model, out, name, settings=None):
    """Exports `model` as the next version of `out/name/` and returns its path.

    Args:
        model: an aekeras autoencoder.
        out: the folder holding one subfolder per model name.
        name: the model's name under `out`, as TF Serving will know it.
        settings: optional JSON-serialisable dict written beside the
            SavedModel as `run.json` (the run's settings and metrics).

    Returns:
        The `Path` of the published version folder.
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(
            f"model name {name!r} must be letters, digits, '-' or '_' "
            "(it names a folder TF Serving watches)"
        )
    model_dir = Path(out) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(model_dir)
    staging = model_dir / f".staging-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        build_archive(model).write_out(str(staging), verbose=False)
        if settings is not None:
            (staging / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        while True:
            existing = versions(model_dir)
            version_dir = model_dir / str(existing[-1] + 1 if existing else 1)
            try:
                # Fails if another exporter published this version first.
                os.rename(staging, version_dir)
                return version_dir
            except OSError:
                if not version_dir.exists():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_models_config(out, base_path=None):
    """Writes `out/models.config` listing every model folder under `out`.

    `base_path` is where the server sees `out` (for example `/models` inside
    the `tensorflow/serving` container); it defaults to the absolute path of
    `out`. The file is written whole under a temporary name, then renamed.

    Returns:
        The `Path` of the config file.
    """
    out = Path(out)
    base_path = base_path or str(out.absolute())
    config = model_server_config_pb2.ModelServerConfig()
    for model_dir in sorted(p for p in out.iterdir() if p.is_dir() and versions(p)):
        entry = config.model_config_list.config.add()
        entry.name = model_dir.name
        entry.base_path = f"{base_path.rstrip('/')}/{model_dir.name}"
        entry.model_platform = "tensorflow"
    path = out / MODELS_CONFIG_FILE
    staging = out / f".{MODELS_CONFIG_FILE}.{uuid.uuid4().hex}"
    staging.write_text(text_format.MessageToString(config))
    os.replace(staging, path)
    return path
