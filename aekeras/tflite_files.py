""".tflite files as flatbuffer objects: read to edit, and written back compactly.

The converter and LiteRT's quantizer write every tensor's shape, zero
points and quantization table anew, although many are the same (a small
model's three signatures repeat most of its graph), and give every
tensor an empty quantization table where it has none. `compact` writes
each distinct vector, string and quantization table once, every copy
pointing at it as flatbuffers allow (their references are offsets;
`CreateSharedString` shares strings so), and leaves out the empty
tables: the model LiteRT reads is the same, tensor by tensor. The
lesson's conv model's float file came out 8.6% smaller, its int16x8 file
25% (README, "Every format, measured"). `strip_names=True` also drops
the names of the tensors no signature reads or writes: labels for
debugging (a viewer shows them) that were over a quarter of that int16x8
file.
"""

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

FILE_IDENTIFIER = b"TFL3"  # the TFLite schema's
BUFFER_ALIGNMENT = 16  # where each weight buffer after the flatbuffer starts: ample for any element type


def model_object(content):
    """A `.tflite` file's contents as flatbuffer objects to edit, its weights inside the flatbuffer."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for buffer in model.buffers:
        if buffer.offset > 1:  # stored after the flatbuffer: back inside, where the writer keeps it
            buffer.data = np.frombuffer(content, np.uint8, buffer.size, buffer.offset)
            buffer.offset = buffer.size = 0
    return model


class _SharingBuilder(flatbuffers.Builder):
    """A flatbuffer builder that writes each distinct vector and string once.

    The schema's `Pack` methods write NumPy arrays through
    `CreateNumpyVector` and strings through `CreateString`; a later copy
    gets the offset of the first.
    """

    def __init__(self):
        super().__init__(1024)
        self._offsets = {}

    def written_once(self, key, write):
        """The offset of what `write()` wrote for `key`, written at its first call."""
        if key not in self._offsets:
            self._offsets[key] = write()
        return self._offsets[key]

    def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' name)
        return self.written_once(
            (x.dtype.str, x.tobytes()), lambda: super(_SharingBuilder, self).CreateNumpyVector(x)
        )

    def CreateString(self, s, encoding="utf-8", errors="strict"):  # noqa: N802 (flatbuffers' name)
        text = s.encode(encoding, errors) if isinstance(s, str) else bytes(s)
        return self.written_once(("string", text), lambda: super(_SharingBuilder, self).CreateString(text))


_QUANTIZATION_VECTORS = ("min", "max", "scale", "zeroPoint")


class _SharedQuantization(schema.QuantizationParametersT):
    """A quantization table written once for every tensor quantized alike (a weight in several signatures)."""

    def Pack(self, builder):  # noqa: N802 (flatbuffers' name)
        vectors = tuple(
            None if getattr(self, f) is None else np.asarray(getattr(self, f)).tobytes()
            for f in _QUANTIZATION_VECTORS
        )
        key = ("quantization", vectors, self.quantizedDimension)
        return builder.written_once(key, lambda: super(_SharedQuantization, self).Pack(builder))


def _quantization_shared(model):
    """Drops the quantization tables that hold nothing (an absent one reads the same) and shares the rest."""
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            table = tensor.quantization
            if table is None or table.details is not None:  # a table with details is left as it is
                continue
            if all(getattr(table, field) is None for field in _QUANTIZATION_VECTORS):
                tensor.quantization = None
            else:
                tensor.quantization = _SharedQuantization()
                tensor.quantization.__dict__.update(table.__dict__)


def _signature_tensors(model):
    """`{(subgraph index, tensor index)}` of every signature's inputs and outputs."""
    return {
        (signature.subgraphIndex, entry.tensorIndex)
        for signature in model.signatureDefs or ()
        for entry in (*signature.inputs, *signature.outputs)
    }


def _strip_inner_names(model):
    """Drops the name of every tensor that no signature reads or writes."""
    kept = _signature_tensors(model)
    for subgraph_index, subgraph in enumerate(model.subgraphs):
        for tensor_index, tensor in enumerate(subgraph.tensors):
            if (subgraph_index, tensor_index) not in kept:
                tensor.name = None


def _packed(model):
    """`model`'s flatbuffer, each vector, string and quantization table once."""
    builder = _SharingBuilder()
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _aligned(position):
    """`position` rounded up to the next multiple of `BUFFER_ALIGNMENT`."""
    return -(-position // BUFFER_ALIGNMENT) * BUFFER_ALIGNMENT


def _with_weights_after(model, content):
    """The file of a model whose weights lie after its flatbuffer, each buffer where its offset says.

    Each such buffer's offset is where its bytes start in the file; a
    smaller flatbuffer moves them, so it is written twice: first to learn
    its length, then with the offsets that follow from it (the same length,
    as an offset field is written whatever its value).
    """
    outside = [
        (buffer, content[buffer.offset : buffer.offset + buffer.size])
        for buffer in model.buffers
        if buffer.offset > 1
    ]
    position = _aligned(len(_packed(model)))
    for buffer, weights in outside:
        buffer.offset, position = position, _aligned(position + len(weights))
    written = bytearray(_packed(model))
    for buffer, weights in outside:
        written += bytes(buffer.offset - len(written)) + weights  # zeros up to its aligned start
    return bytes(written)


def compact(content, strip_names=False):
    """A `.tflite` file's bytes written again, each vector, string and quantization table once.

    `strip_names`: also drop the names of tensors that no signature reads
    or writes. Weights that lie after the flatbuffer (the converter's
    layout for a model of 2 GiB or more, beyond what a flatbuffer
    addresses) stay there.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    _quantization_shared(model)
    if strip_names:
        _strip_inner_names(model)
    if any(buffer.offset > 1 for buffer in model.buffers):
        return _with_weights_after(model, content)
    return _packed(model)
