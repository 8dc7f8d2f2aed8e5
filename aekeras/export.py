"""SavedModel export in the layout TF Serving watches.

`saved_model(model, out, name)` writes `out/name/<version>/`, versions
counting up from 1. Each version is written under a temporary name beside
the others and renamed into place only when complete, so a server polling
the folder never sees half a model, and an export that is killed leaves no
version behind: only its staging folder, which the next export on the same
machine removes. `write_models_config(out)` writes the TF Serving
`models.config` listing every model under `out`.
"""

import contextlib
import json
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.eager import context
from tensorflow.python.framework import config as tf_config
from tensorflow_serving.config import model_server_config_pb2

from aekeras import quantization, signatures
from aekeras.errors import ContractChangeError, ModelFileError, first_line, not_the_files_fault
from aekeras.interrupts import ctrl_c_kept, publishing
from aekeras.names import check_loadable_path, check_name
from aekeras.staging import locked, made_folder, staging_path, write_atomically

SETTINGS_FILE = "run.json"
MODELS_CONFIG_FILE = "models.config"


# TF Serving reads a version folder's name as an int64, and skips one past
# it without a word: a version numbered beyond this is never served.
MAX_VERSION = 2**63 - 1


def version_number(name):
    """The version a folder name stands for, or None: ASCII digits up to `MAX_VERSION`, `03` version 3, as TF Serving reads it."""
    if not (name.isascii() and name.isdigit()):
        return None
    number = int(name)
    return number if number <= MAX_VERSION else None


def version_folders(model_dir):
    """`{version: path}` of the entries under `model_dir` named as versions; the path keeps the entry's own name."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return {}
    return {
        version_number(p.name): p for p in sorted(model_dir.iterdir()) if version_number(p.name) is not None
    }


def versions(model_dir):
    """The integer versions under `model_dir`, in increasing order."""
    return sorted(version_folders(model_dir))


def load(version_dir):
    """The SavedModel in `version_dir`, loaded as TF Serving loads it (its `serve` tag).

    Raises:
        FileNotFoundError: where `version_dir` holds no `saved_model.pb`.
        ModelFileError: for a path TensorFlow cannot read it back from, or
            files it cannot parse or restore (garbled, cut short).
    """
    if not (Path(version_dir) / "saved_model.pb").is_file():
        raise FileNotFoundError(f"{version_dir}: no saved_model.pb (expected an export's version folder)")
    check_loadable_path(version_dir)
    try:
        return tf.saved_model.load(str(version_dir), tags=["serve"])
    except (OSError, IndexError, ValueError, tf.errors.OpError) as e:
        # A copy garbled or cut short: TensorFlow's parse or restore error
        # (IndexError: variables read short), raised deep in a traceback.
        if not_the_files_fault(e):
            raise
        raise ModelFileError(
            f"{version_dir}: damaged SavedModel ({first_line(e, type(e).__name__)}); expected the files an "
            "export writes"
        ) from None


def build_archive(model):
    """A `keras.export.ExportArchive` serving `aekeras.signatures.endpoints(model)`."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, inputs) in signatures.endpoints(model).items():
        archive.add_endpoint(name, function, list(inputs.values()))
    return archive


def latest_version(model_dir):
    """The highest version folder under `model_dir`, or None if it has none; checked to hold a SavedModel.

    Raises:
        ModelFileError: for a stray entry named as a version (an empty
            folder, a file), which TF Serving would take for the latest one.
    """
    found = version_folders(model_dir)
    if not found:
        return None
    path = found[max(found)]
    if not (path / "saved_model.pb").is_file():
        raise ModelFileError(
            f"{path}: no SavedModel (saved_model.pb) there, yet TF Serving would take it for the latest "
            f"version of {Path(model_dir).name}; remove it or move it out of {model_dir}"
        )
    return path


def check_contract(model, out, name):
    """Raises ContractChangeError if `out/name`'s latest version serves other signatures than `model` would.

    TF Serving moves every client of a name to its newest version, so a new
    version with other input or output names, dtypes or shapes would break
    them without a word.
    """
    latest = latest_version(Path(out) / name)
    if latest is None:
        return
    served = signatures.Contract.from_saved_model(load(latest), latest)
    # Traced as the export traces them: op determinism refuses `sample`'s unseeded draw.
    with _without_global_seed():
        expected = signatures.Contract.for_model(model)
    changes = served.differences(expected)
    if changes:
        raise ContractChangeError(
            f"{latest} serves other signatures than this model ({'; '.join(changes)}); publish it under a "
            "new --name, or pass --allow-contract-change to change what its clients get"
        )


# A Ctrl-C while TensorFlow traces the signatures stays a Ctrl-C (one a
# finalizer dropped let the export run on and publish), in a notebook as in
# `aekeras export`. It is raised at `publishing`, not inside TensorFlow's code.
@ctrl_c_kept(at_safe_points=True)
def saved_model(model, out, name, settings=None, allow_contract_change=False, int8_weights=False):
    """Exports `model` as the next version of `out/name/` and returns its path.

    Args:
        model: an aekeras autoencoder.
        out: the folder holding one subfolder per model name.
        name: the model's name under `out`, as TF Serving will know it.
        settings: optional JSON-serialisable dict written beside the
            SavedModel as `run.json` (the run's settings and metrics).
        allow_contract_change: publish even if the signatures differ from
            those of the latest version under `name`.
        int8_weights: export a copy whose kernels lie on LiteRT's int8
            grid (`aekeras.quantization`), so that an int16x8 conversion
            of it loses nothing to weight rounding; `model` is unchanged
            and `run.json` records `"int8_weights": true`.

    Returns:
        The `Path` of the published version folder.

    Raises:
        TypeError: for a model that is not an aekeras autoencoder (its
            signatures are built from the autoencoder's own methods).
        ValueError: for a name TF Serving cannot watch, or int8 weights
            for tied weights.
        ModelFileError: for an `out` TensorFlow could not read back from, or
            a name at version `MAX_VERSION` (none can follow it).
        ContractChangeError: if the signatures would change, unless allowed.
    """
    _check_autoencoder(model)
    check_name(name)
    check_loadable_path(Path(out) / name)
    if int8_weights:
        model = quantization.int8_snapped_copy(model)
        settings = None if settings is None else {**settings, "int8_weights": True}
    if not allow_contract_change:
        check_contract(model, out, name)
    with made_folder(Path(out) / name) as model_dir:
        staging = staging_path(model_dir)
        try:
            with _without_global_seed():
                build_archive(model).write_out(str(staging), verbose=False)
            signatures.write_value_counts(staging, model.input_value_counts())
            if settings is not None:
                (staging / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
            with locked(model_dir):
                if not allow_contract_change:
                    # Again: another exporter may have published since the check above.
                    check_contract(model, out, name)
                # A Ctrl-C dropped while writing: nothing is published; one
                # after this: the caller's records of the version are written too.
                publishing()
                return _take_next_version(staging, model_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _check_autoencoder(model):
    """Raises TypeError for a model that is not an aekeras autoencoder, whose methods the signatures are built from."""
    # Imported here: `aekeras.serving` imports this module, and serves an
    # export under any Keras backend, which `aekeras.models` refuses.
    from aekeras.models.base import BaseAutoencoder

    if not isinstance(model, BaseAutoencoder):
        raise TypeError(
            f"expected an aekeras autoencoder (aekeras.models) to export, got {type(model).__name__}"
        )


def check_room_for_a_version(model_dir, existing=None):
    """Raises ModelFileError where `model_dir`'s latest version is `MAX_VERSION`: none can follow it.

    `existing`: its versions, where the caller listed them already.
    """
    existing = versions(model_dir) if existing is None else existing
    if existing and existing[-1] == MAX_VERSION:
        raise ModelFileError(
            f"{Path(model_dir) / str(MAX_VERSION)}: no version can follow it (TF Serving numbers versions up "
            f"to {MAX_VERSION}); publish under a new --name, or renumber the versions of {model_dir}"
        )


def _take_next_version(staging, model_dir):
    """Renames `staging` to the next version folder of `model_dir`, returned."""
    while True:
        existing = versions(model_dir)
        check_room_for_a_version(model_dir, existing)
        version_dir = model_dir / str(existing[-1] + 1 if existing else 1)
        try:
            # Fails if a writer that takes no lock published this version first.
            os.rename(staging, version_dir)
            return version_dir
        except OSError:
            if not version_dir.exists():
                raise


@contextlib.contextmanager
def _without_global_seed():
    """While the serving functions are traced: no global seed, so their random ops draw afresh in every process.

    Under one (`keras.utils.set_random_seed`, which `aekeras train` sets
    for training) TensorFlow writes a fixed seed into each random op, and
    every server process would answer `sample` with the same images.
    Op determinism (`TF_DETERMINISTIC_OPS=1`,
    `tf.config.experimental.enable_op_determinism()`) is lifted meanwhile
    too: it refuses to trace an unseeded random op, and stopped the export
    of every VAE in a RuntimeError. It is the tracing process's setting,
    not the SavedModel's: a server chooses its own.
    """
    previous = context.global_seed()
    deterministic = tf_config.is_op_determinism_enabled()
    tf.random.set_seed(None)
    tf_config.disable_op_determinism()
    try:
        yield
    finally:
        if deterministic:
            tf_config.enable_op_determinism()
        if previous is not None:
            tf.random.set_seed(previous)


def write_models_config(out, base_path=None):
    """Writes `out/models.config` listing every model folder under `out`.

    `base_path` is where the server sees `out` (for example `/models` inside
    the `tensorflow/serving` container); by default the one the existing
    file places its models under, so that a later export or run keeps a
    serving root given once, else the absolute path of `out`. What a user
    added to the file (version policies, labels, other models) is kept:
    only each model folder's name, base path and platform are set, and the
    entries of model folders since removed from `out` go. The
    file is written whole under a temporary name, then renamed.

    Returns:
        The `Path` of the config file.

    Raises:
        ModelFileError: for an existing file that is not a TF Serving
            config (`check_models_config`), left as it is.
    """
    out = Path(out)
    path = out / MODELS_CONFIG_FILE
    with locked(out):  # concurrent exports: each reads the file the last one wrote
        config = _read_models_config(path)
        model_dirs = sorted(p for p in out.iterdir() if p.is_dir() and versions(p))
        base_path = base_path or _serving_root(config, model_dirs) or str(out.absolute())
        listed = config.model_config_list.config
        for entry in list(listed):
            if entry.base_path == f"{base_path.rstrip('/')}/{entry.name}" and not versions(out / entry.name):
                listed.remove(entry)  # a model folder of `out` removed since
        entries = {entry.name: entry for entry in listed}
        for model_dir in model_dirs:
            entry = entries.get(model_dir.name) or listed.add()
            entry.name = model_dir.name
            entry.base_path = f"{base_path.rstrip('/')}/{model_dir.name}"
            entry.model_platform = "tensorflow"
        write_atomically(path, lambda partial: partial.write_text(text_format.MessageToString(config)))
    return path


def check_models_config(out):
    """Raises ModelFileError where `out/models.config` exists and is not a config `write_models_config` can update.

    For commands to call before they publish, so that a config they could
    not update stops them with nothing written.
    """
    _read_models_config(Path(out) / MODELS_CONFIG_FILE)


def _read_models_config(path):
    """An existing `models.config`, or an empty one where there is no file.

    Raises:
        ModelFileError: for a file that cannot be read, is not a TF Serving
            config this tensorflow-serving-api knows (a typo in a hand
            edit, a newer field), or lists its models in a
            `custom_model_config`: written afresh, it would lose the user's
            version policies, labels, other models and serving root.
    """
    kept = "left as it is, since rewriting it would lose what it lists: fix it, or remove it to have it written afresh"
    try:
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    except FileNotFoundError:
        return model_server_config_pb2.ModelServerConfig()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot be read ({e.strerror or e}); {kept}") from None
    except (UnicodeDecodeError, text_format.ParseError) as e:
        raise ModelFileError(
            f"{path}: not a TF Serving model config this tensorflow-serving-api can read ({first_line(e)}); {kept}"
        ) from None
    if config.WhichOneof("config") == "custom_model_config":
        raise ModelFileError(
            f"{path}: lists its models in a custom_model_config, not a model_config_list; {kept}"
        )
    return config


def _serving_root(config, model_dirs):
    """The folder a `models.config` places this folder's models in, or None (none listed, or no one folder)."""
    names = {model_dir.name for model_dir in model_dirs}
    roots = {
        entry.base_path[: -len(entry.name)].rstrip("/") or "/"
        for entry in config.model_config_list.config
        if entry.name in names and entry.base_path.endswith(f"/{entry.name}")
    }
    return roots.pop() if len(roots) == 1 else None
