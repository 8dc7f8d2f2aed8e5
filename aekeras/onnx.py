"""ONNX conversion of exported SavedModels, and running the result in onnxruntime.

`convert(version_dir)` writes one ONNX file per signature of an export into
`<version_dir>/onnx/<signature>.onnx` (tf2onnx), each with the SavedModel's
input and output names. `Runner` runs them with onnxruntime, checking every
call against the files' own signatures first, as the LiteRT `Runner` does.
`max_differences` compares every signature with the SavedModel's on the
same images.
"""

import os
import shutil
from pathlib import Path

import onnx
import onnxruntime
import tensorflow as tf
import tf2onnx
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidProtobuf

from aekeras import export
from aekeras.errors import ModelFileError, first_line
from aekeras.interrupts import ctrl_c_kept, publishing, raise_if_pressed
from aekeras.signatures import Contract, read_value_counts
from aekeras.signatures import max_differences as max_differences_from
from aekeras.staging import staging_path

# 17 is what onnxruntime, TensorRT and most other runtimes of 2024 on accept.
DEFAULT_OPSET = 17
ONNX_FOLDER = "onnx"
# The metadata each file of a conversion carries (`_conversion_marks`), so
# that `Runner` runs only the files of one conversion together.
EXPORT_MARK = "aekeras_export"
SIGNATURES_MARK = "aekeras_signatures"


def onnx_dir(version_dir):
    """Where `convert` writes: `<version_dir>/onnx/`."""
    return Path(version_dir) / ONNX_FOLDER


def _convert_signature(function, path, opset, marks):
    """One signature's ONNX file, inputs and outputs named as in the SavedModel, `marks` in its metadata."""
    _, inputs = function.structured_input_signature
    names = sorted(inputs)
    specs = [tf.TensorSpec(inputs[n].shape, inputs[n].dtype, name=n) for n in names]
    # tf2onnx traces a function of positional inputs; the signature takes names.
    traced = tf.function(lambda *args: function(**dict(zip(names, args, strict=True))), input_signature=specs)
    model, _ = tf2onnx.convert.from_function(traced, input_signature=specs, opset=opset)
    _unseed_random_ops(model.graph)
    onnx.helper.set_model_props(model, marks)
    onnx.save(model, str(path))


def export_id(version_dir):
    """The SavedModel's fingerprint (TensorFlow's `fingerprint.pb`: its graph and weights), None without one."""
    try:
        return tf.saved_model.experimental.read_fingerprint(str(version_dir)).singleprint()
    except FileNotFoundError:
        return None


def _conversion_marks(version_dir, signature_names):
    """What each file of one conversion carries: the export converted and every signature converted with it."""
    return {EXPORT_MARK: export_id(version_dir) or "", SIGNATURES_MARK: ",".join(sorted(signature_names))}


def _check_one_conversion(folder, sessions):
    """Refuses a folder whose files are not those of one conversion of the export around it.

    A file copied in by hand (an older conversion, another export's) or
    removed ran silently beside the others. Files converted before these
    marks were written carry none, and are not compared.
    """
    marks = {name: session.get_modelmeta().custom_metadata_map for name, session in sessions.items()}
    if all(EXPORT_MARK not in mark for mark in marks.values()):
        return
    again = f"run `aekeras onnx {folder.parent}` to convert it again"
    by_conversion = {}
    for name, mark in sorted(marks.items()):
        by_conversion.setdefault((mark.get(EXPORT_MARK), mark.get(SIGNATURES_MARK)), []).append(name)
    if len(by_conversion) > 1:
        groups = sorted(by_conversion.values(), key=len)
        odd, rest = groups[0], [name for group in groups[1:] for name in group]
        raise ModelFileError(
            f"{folder}: {', '.join(f'{n}.onnx' for n in odd)} {'is' if len(odd) == 1 else 'are'} of another "
            f"conversion than "
            f"{', '.join(f'{n}.onnx' for n in rest)} (another export's, or an earlier one); expected the files "
            f"of one conversion: {again}"
        )
    ((converted, signatures),) = by_conversion
    missing = sorted(set(signatures.split(",")) - set(sessions))
    if missing:
        raise ModelFileError(
            f"{folder}: has no {', '.join(f'{n}.onnx' for n in missing)} of the conversion its other files "
            f"come from; expected every signature's file: {again}"
        )
    around = export_id(folder.parent)
    if converted and around and converted != around:
        raise ModelFileError(
            f"{folder}: its files are the conversion of another export than {folder.parent} (another "
            f"version's, or the export was replaced since); {again}"
        )


def _unseed_random_ops(graph):
    """Drops the seed tf2onnx writes into random ops (0): onnxruntime would then draw one sequence in every session.

    Without a seed each session draws afresh, as the SavedModel's `sample` does in every server process.
    """
    for node in graph.node:
        if node.op_type.startswith("Random"):
            kept = [attribute for attribute in node.attribute if attribute.name != "seed"]
            del node.attribute[:]
            node.attribute.extend(kept)


def check_names(saved_model):
    """Raises ValueError for a signature with an input and an output of the same name.

    ONNX names every value of a graph once, and the files keep the
    SavedModel's names: tf2onnx fails on such a signature deep in its
    rewriters (`graph input 'images' not exist`).
    """
    for name, function in sorted(saved_model.signatures.items()):
        _, inputs = function.structured_input_signature
        shared = sorted(set(inputs) & set(function.structured_outputs))
        if shared:
            raise ValueError(
                f"signature {name!r} has an input and an output both named {shared[0]!r}, which one ONNX "
                "graph cannot hold (ONNX names each value once); rename the output to convert it"
            )


# A Ctrl-C while tf2onnx converts stays a Ctrl-C (one a finalizer dropped
# let the conversion run on and replace the files), in a notebook as in
# `aekeras onnx`. It is raised between signatures or at `publishing`.
@ctrl_c_kept(at_safe_points=True)
def convert(version_dir, *, opset=DEFAULT_OPSET):
    """Converts every signature of an export to ONNX, beside it.

    Args:
        version_dir: an export's version folder (`saved_models/<name>/<n>`).
        opset: the ONNX opset to target.

    Returns:
        `{signature name: Path}`. The folder is replaced whole: a failed or
        interrupted conversion leaves the previous files (or none).

    Raises:
        ValueError: for a signature ONNX cannot name (`check_names`).
        KeyboardInterrupt: on Ctrl-C before the new files are swapped in, the
            previous ones left as they were.
    """
    saved_model = export.load(version_dir)
    check_names(saved_model)
    target = onnx_dir(version_dir)
    # Staging folders name their process: a killed conversion's are removed by the next.
    staging = staging_path(target.parent)
    staging.mkdir()
    marks = _conversion_marks(version_dir, saved_model.signatures)
    try:
        for name, function in saved_model.signatures.items():
            raise_if_pressed()
            _convert_signature(function, staging / f"{name}.onnx", opset, marks)
        # A Ctrl-C from here on lets the swap finish: between its two renames
        # it would leave no onnx folder at all.
        publishing()
        old = staging_path(target.parent)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: target / f"{name}.onnx" for name in sorted(saved_model.signatures)}


def _session(path, options):
    """An onnxruntime session of one file.

    Raises:
        ModelFileError: for a file onnxruntime cannot load (empty, cut
            short, garbled), in one line rather than its bracketed codes.
    """
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except (InvalidArgument, InvalidProtobuf, Fail) as e:
        # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from PATH failed:Protobuf parsing failed."
        reason = first_line(str(e).strip().rpartition("failed:")[2], type(e).__name__)
        raise ModelFileError(
            f"{path}: not a readable ONNX file ({reason}); expected one written by `aekeras onnx`"
        ) from None


class Runner:
    """Runs an export's ONNX files with onnxruntime, one session per signature.

    Every call is checked against the files' own signatures (names, shapes,
    dtypes, finite values, images on [0, 1]) before it runs.

    Args:
        folder: the folder `convert` wrote (`<version_dir>/onnx`), or the
            version folder itself.

    Raises:
        FileNotFoundError: for a folder without `.onnx` files.
        ModelFileError: for a file onnxruntime cannot load, or files that
            are not those of one conversion of the export around them (one
            of them copied in from another conversion, or removed).

    Example:

    >>> runner = Runner("saved_models/dense/1/onnx")
    >>> runner("serving_default", images=images)["score"]
    """

    def __init__(self, folder):
        folder = Path(folder)
        if (folder / ONNX_FOLDER).is_dir():
            folder = folder / ONNX_FOLDER
        files = sorted(folder.glob("*.onnx"))
        if not files:
            raise FileNotFoundError(f"{folder}: no .onnx files (run `aekeras onnx VERSION_DIR` first)")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        self.folder = folder
        self.sessions = {f.stem: _session(f, options) for f in files}
        _check_one_conversion(folder, self.sessions)
        # The export's label and codebook counts: onnxruntime's Gather reads a
        # label or index past them as another class or vector, or fails natively.
        self.contract = Contract.from_onnx(self.sessions, read_value_counts(folder.parent))

    def __call__(self, signature_name="serving_default", **inputs):
        arrays = self.contract.check(signature_name, inputs)
        session = self.sessions[signature_name]
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, arrays), strict=True))


def max_differences(version_dir, images, batch_size=500, verbose=False, labels=None):
    """`{signature: {output: max |ONNX - SavedModel|}}` on `images` (and their `labels`, where read).

    See `aekeras.signatures.max_differences`.
    """
    runner = Runner(onnx_dir(version_dir))
    return max_differences_from(export.load(version_dir), runner, images, "ONNX", batch_size, verbose, labels)
