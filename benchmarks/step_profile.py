"""Where a training step's time goes: TensorFlow's profiler over aekeras's own step.

`python benchmarks/step_profile.py vae` traces `train_step` of the
benchmark's model (the registered defaults, aekeras's Adam, one MNIST-sized
batch of 256) run many times in one graph, as `fit` runs it with several
steps per call, and prints the wall time per step and each kind of op's
share of the op time (summed over TensorFlow's threads, so it can exceed
the wall time where ops overlap), with the number of each kind's ops.
`training_matmuls` lists the matmuls such a step makes, for the
benchmark's step of nothing but them.
"""

import argparse
import collections
import sys
import tempfile
import time
import typing
from pathlib import Path

STEPS = 50


def _op_kind(event_name):
    """The kind of op (`matmul`, `convolution`, `pooling`, `optimizer`, ...) of an op's trace name."""
    op_type = event_name.rsplit(":", 1)[-1]
    if "MatMul" in op_type:
        return "matmul"
    if "Conv" in op_type:
        return "convolution"
    if "Pool" in op_type:
        return "pooling"
    if op_type.startswith("ResourceApply"):
        return "optimizer"
    if op_type == "BiasAddGrad":
        return "bias gradient"
    return "elementwise and other"


def op_time_by_kind(xspace_path):
    """`({kind: picoseconds}, {kind: ops run})` of every TensorFlow op in a profiler trace (the host's compute threads)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(xspace_path).read_bytes())
    totals, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Ops are named "node:OpType"; the executor's own spans are not ops.
                if ":" in name and not name.startswith("ExecutorState"):
                    totals[_op_kind(name)] += event.duration_ps
                    counts[_op_kind(name)] += 1
    return totals, counts


class Matmul(typing.NamedTuple):
    """One matmul of a training step: `rows x inner` times `inner x columns`, operands read transposed as flagged."""

    rows: int
    inner: int
    columns: int
    transpose_a: bool = False
    transpose_b: bool = False

    @property
    def flops(self):
        return 2 * self.rows * self.inner * self.columns

    def operand_shapes(self):
        """The shapes of the two operands as stored (`tf.matmul`'s `a` and `b`)."""
        a = (self.inner, self.rows) if self.transpose_a else (self.rows, self.inner)
        b = (self.columns, self.inner) if self.transpose_b else (self.inner, self.columns)
        return a, b


def training_matmuls(model, batch_size):
    """The matmuls of `model`'s training step on a batch of `batch_size`; None where it has weighted layers other than Dense.

    Per batch shard (`model.batch_shards`, sized as `shards.split` sizes
    them) and Dense layer, as TensorFlow's MatMul gradient writes them: the
    forward `x @ kernel`, the kernel's gradient `x^T @ g` and the input's
    `g @ kernel^T`, except the first layer's input gradient: the images
    need none, so the step never runs it (nor does PyTorch's autograd
    make it).
    """
    import keras

    layers = [layer for layer in [*model.encoder.layers, *model.decoder.layers] if layer.weights]
    if not all(isinstance(layer, keras.layers.Dense) for layer in layers):
        return None
    count = model.batch_shards
    matmuls = []
    for shard in range(count):
        rows = batch_size // count + (shard < batch_size % count)
        for index, layer in enumerate(layers):
            inner, columns = layer.kernel.shape
            matmuls.append(Matmul(rows, inner, columns))
            matmuls.append(Matmul(inner, rows, columns, transpose_a=True))
            if index:
                matmuls.append(Matmul(rows, columns, inner, transpose_b=True))
    return matmuls


def profile(name, threads):
    """`(seconds per step, {kind: (seconds, ops) per step})` of model `name`'s training step."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    import numpy as np

    from aekeras import optimizers, registry

    model = registry.build_model(name, None, seed=0)
    model.compile(optimizer=optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    low, high = model.value_range
    images = np.random.default_rng(0).uniform(low, high, (256, *model.image_shape)).astype(np.float32)
    batch = tf.constant(images)

    @tf.function
    def steps():
        for _ in tf.range(STEPS):
            model.train_step(batch)

    steps()
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        started = time.perf_counter()
        steps()
        seconds = time.perf_counter() - started
        tf.profiler.experimental.stop()
        (trace,) = Path(folder).rglob("*.xplane.pb")
        kinds, counts = op_time_by_kind(trace)
    per_step = {kind: (ps / 1e12 / STEPS, counts[kind] / STEPS) for kind, ps in kinds.items()}
    return seconds / STEPS, per_step


def _threads(text):
    """`--threads`: a whole number of at least 0, or argparse's one-line error."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return int(text)


def main(argv=None):
    from aekeras import registry

    parser = argparse.ArgumentParser(prog="step_profile.py", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=registry.model_names(), help="a registered model name")
    parser.add_argument(
        "--threads", type=_threads, default=0, help="threads per TensorFlow op (0: one per core)"
    )
    args = parser.parse_args(argv)
    step, kinds = profile(args.model, args.threads)
    print(f"{args.model}, threads per op {args.threads or 'one per core'}: {1e3 * step:.2f} ms per step")
    total = sum(seconds for seconds, _ in kinds.values())
    for kind, (seconds, ops) in sorted(kinds.items(), key=lambda item: -item[1][0]):
        print(
            f"  {kind}: {1e3 * seconds:.2f} ms of op time per step ({100 * seconds / total:.0f}%), "
            f"{ops:g} ops"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
