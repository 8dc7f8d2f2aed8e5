"""Where a training step's time goes: TensorFlow's profiler over aekeras's own step.

`python benchmarks/step_profile.py vae` traces `train_step` of the
benchmark's model (the registered defaults, aekeras's Adam, one MNIST-sized
batch of 256) run many times in one graph, as `fit` runs it with several
steps per call, and prints the wall time per step and each kind of op's
share of the op time (summed over TensorFlow's threads, so it can exceed
the wall time where ops overlap).
"""

import argparse
import collections
import sys
import tempfile
import time
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
    """`{kind: picoseconds}` of every TensorFlow op in a profiler trace (the host's compute threads)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(xspace_path).read_bytes())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Ops are named "node:OpType"; the executor's own spans are not ops.
                if ":" in name and not name.startswith("ExecutorState"):
                    totals[_op_kind(name)] += event.duration_ps
    return totals


def profile(name, threads):
    """`(seconds per step, {kind: seconds per step})` of model `name`'s training step."""
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
        kinds = op_time_by_kind(trace)
    return seconds / STEPS, {kind: ps / 1e12 / STEPS for kind, ps in kinds.items()}


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
    total = sum(kinds.values())
    for kind, seconds in sorted(kinds.items(), key=lambda item: -item[1]):
        print(f"  {kind}: {1e3 * seconds:.2f} ms of op time per step ({100 * seconds / total:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
