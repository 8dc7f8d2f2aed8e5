"""Benchmarks: aekeras against PyTorch at its best, and where the time goes.

Everything comes from one run on one machine: sides that are compared
alternate epoch by epoch (or run by run) in the same race, so a shared,
noisy machine moves them alike, and every figure is a ratio within one
race with the spread of its repeats. `run(settings)` returns the results;
`markdown(results, command)` renders BENCHMARKS.md, targets included. Needs
the `bench` extra (`pip install -e ".[bench]"`: torch 2.13.0 CPU); `make
bench` installs it.
"""

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import step_profile  # beside this file: run as a script, its folder is on the path
import tensorflow as tf
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from aekeras import data, export, optimizers, registry, tflite
from aekeras.data.pipeline import drops_remainder_by_default, index_batches, kept_examples
from aekeras.models import blocks, shards
from aekeras.training import TrainConfig, environment
from aekeras.training.runner import configure_tensorflow

BATCH_SIZE = 256
MODELS = ("dense", "conv", "vae")
LECTURE_LOOP = Path(__file__).resolve().parent / "lecture_loop.py"
# The side of a race that makes a training step's matmuls and nothing else.
MATMULS_ALONE = "aekeras's matmuls alone"
# What the issue asks of the default path (aekeras/PyTorch's best, and so on).
TARGETS = {
    "throughput": 1.5,
    "cli_epoch": 1.5,
    "peak_fraction": 0.25,
    "pipeline": 10.0,
}
# The pipelines the 10x target is for: in-memory data, and a folder cached
# where it fits (the default). A folder read as it is decoded, the path for
# folders larger than memory, is measured beside them but is bound by PNG
# decoding on the machine's cores.
TARGET_PIPELINES = ("in memory", "PNG folder, cached")


@dataclasses.dataclass
class BenchSettings:
    """Sizes of one benchmark run; `quick()` proves it works in a minute or two."""

    epochs: int = 4  # per side and race: the first warms up, the rest are the repeats
    train_limit: int = None
    test_limit: int = None
    torch_compile: bool = True
    # An epoch of the CLI: the difference of two runs' wall times. Fourteen epochs
    # apart, as process start-up varied by up to 2 s between runs (four
    # epochs apart, two of three repeats came out at or below zero).
    cli_epochs: tuple = (2, 16)
    cli_repeats: int = 3
    cli_variants: bool = True
    latency_repeats: int = 300
    throughput_seconds: float = 3.0
    matmul_size: int = 2048
    png_images: int = 60000  # as many as the race trains on: a small folder times mostly epoch starts
    pipeline_rounds: int = 3  # readings of each pipeline, alternating

    @classmethod
    def quick(cls):
        return cls(
            epochs=2,
            train_limit=2048,
            test_limit=512,
            torch_compile=False,
            cli_epochs=(1, 2),
            cli_repeats=1,
            cli_variants=False,
            latency_repeats=20,
            throughput_seconds=0.3,
            matmul_size=512,
            png_images=512,
            pipeline_rounds=2,
        )


# --- the same models in PyTorch ------------------------------------------------


class _Crop(nn.Module):
    """Drops `bottom` rows and `right` columns, as Keras's Cropping2D does."""

    def __init__(self, bottom, right):
        super().__init__()
        self.bottom, self.right = bottom, right

    def forward(self, x):
        return x[:, :, : x.shape[2] - self.bottom, : x.shape[3] - self.right]


class _TorchVAE(nn.Module):
    def __init__(self, encoder, decoder, latent_dim):
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim

    def forward(self, x):
        stats = self.encoder(x)
        mean, log_var = stats[:, : self.latent_dim], stats[:, self.latent_dim :]
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        return self.decoder(z), mean, log_var


def _linear(layer, activation=None):
    linear = nn.Linear(*layer.kernel.shape)
    linear.weight.data = torch.from_numpy(layer.kernel.numpy().T.copy())
    linear.bias.data = torch.from_numpy(layer.bias.numpy().copy())
    return [linear] + ([activation] if activation else [])


def _conv(layer, activation):
    conv = nn.Conv2d(layer.kernel.shape[2], layer.kernel.shape[3], 3, padding=1)
    conv.weight.data = torch.from_numpy(layer.kernel.numpy().transpose(3, 2, 0, 1).copy())
    conv.bias.data = torch.from_numpy(layer.bias.numpy().copy())
    return [conv, activation]


def _torch_twin(name, model):
    """The PyTorch module of the same architecture, with the Keras model's weights."""
    if name == "dense":
        return nn.Sequential(
            nn.Flatten(),
            *_linear(model.encoder.layers[-1], nn.Tanh()),
            *_linear(model.decoder.layers[0], nn.Tanh()),
        )
    if name == "conv":
        layers = []
        for layer in model.encoder.layers:
            if isinstance(layer, keras.layers.Conv2D):
                layers += _conv(layer, nn.ReLU())
            else:  # MaxPooling2D with "same" padding rounds 7 up to 4, as ceil_mode does.
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
        for layer in model.decoder.layers:
            if isinstance(layer, keras.layers.Conv2D):
                layers += _conv(layer, nn.Sigmoid() if layer.name == "output" else nn.ReLU())
            elif isinstance(layer, blocks.NearestUpsampling2D):
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            else:
                (_, bottom), (_, right) = layer.cropping
                layers.append(_Crop(bottom, right))
        return nn.Sequential(*layers)
    if name == "vae":
        encoder = nn.Sequential(
            nn.Flatten(), *_linear(model.encoder.layers[1], nn.ReLU()), *_linear(model.encoder.layers[2])
        )
        decoder = nn.Sequential(
            *_linear(model.decoder.layers[0], nn.ReLU()), *_linear(model.decoder.layers[1], nn.Sigmoid())
        )
        return _TorchVAE(encoder, decoder, model.latent_dim)
    raise ValueError(f"no PyTorch twin for {name!r}")


def _torch_loss(name, module, x):
    """The same per-batch objective as the Keras model's."""
    if name == "dense":
        return F.mse_loss(module(x), x.flatten(1))
    if name == "conv":
        return F.binary_cross_entropy(module(x), x)
    probs, mean, log_var = module(x)
    reconstruction = F.binary_cross_entropy(probs, x.flatten(1), reduction="none").sum(1)
    kl = 0.5 * torch.sum(torch.exp(log_var) + mean**2 - 1 - log_var, dim=1)
    return torch.mean(reconstruction + kl)


def _keras_model(name, seed):
    """The registered model `name` with the lecture's defaults, for MNIST."""
    keras.utils.set_random_seed(seed)
    return registry.build_model(name, None, seed=seed)


# --- training races ------------------------------------------------------------


@dataclasses.dataclass
class _Side:
    """One contestant of a race: runs an epoch when asked, and tests itself.

    `run_epoch(epoch)` returns the seconds of the epoch itself where the
    side can tell them apart from a per-call cost (`fit`'s set-up and tear
    down, which a user training for many epochs in one `fit` pays once), or
    `None` when the call is the epoch.
    """

    label: str
    kind: str  # "aekeras", "torch", or "matmuls" (it trains nothing, and has no test loss)
    run_epoch: object
    test_loss: object
    samples: int  # trained on per epoch
    epoch_seconds: list = dataclasses.field(default_factory=list)
    call_seconds: list = dataclasses.field(default_factory=list)
    test_losses: list = dataclasses.field(default_factory=list)


class _EpochClock(keras.callbacks.Callback):
    """The seconds from an epoch's start to its end, inside `fit`."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.started


def _keras_side(label, name, split, seed, compile_options, batch_size=BATCH_SIZE):
    """`model.fit` on `aekeras.data`'s pipeline, as a user runs it, one epoch per call."""
    (examples, test_examples), spec = split
    model = _keras_model(name, seed)
    compile_options = dict(compile_options)
    # aekeras's Adam, as `aekeras train` uses, unless a lever says otherwise.
    adam = compile_options.pop("adam", optimizers.Adam)
    model.compile(optimizer=adam(1e-3), **compile_options)
    options = dict(batch_size=batch_size, seed=seed, value_range=model.value_range)
    train = data.make_dataset(examples, spec, shuffle=True, keep_uint8=True, **options)
    test = data.make_dataset(test_examples, spec, **{**options, "batch_size": 1000})

    clock = _EpochClock()

    def run_epoch(epoch):
        model.fit(train, initial_epoch=epoch, epochs=epoch + 1, verbose=0, callbacks=[clock])
        return clock.seconds

    def test_loss():
        return float(model.evaluate(test, verbose=0, return_dict=True)["loss"])

    return _Side(label, "aekeras", run_epoch, test_loss, trained_per_epoch(len(examples), batch_size))


def _torch_side(label, name, split, seed, orders, compiled, threads=2):
    """The PyTorch twin with the Keras model's initial weights; `torch.compile`d if `compiled`.

    `threads`: PyTorch's threads while this side runs (it can change them
    at any time, unlike TensorFlow).
    """
    (examples, test_examples), _ = split
    model = _keras_model(name, seed)
    twin = _torch_twin(name, model)
    low, high = model.value_range

    def tensor(images):
        images = data.unit_scale(images) * (high - low) + low
        return torch.from_numpy(images.transpose(0, 3, 1, 2).copy() if name == "conv" else images)

    x_train, x_test = tensor(examples.images), tensor(test_examples.images)
    optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3, eps=1e-7)

    def step(x):
        optimizer.zero_grad()
        loss = _torch_loss(name, twin, x)
        loss.backward()
        optimizer.step()

    step = torch.compile(step) if compiled else step

    def run_epoch(epoch):
        torch.set_num_threads(threads)
        twin.train()
        for indices in orders[epoch]:
            step(x_train[indices])

    def test_loss():
        torch.set_num_threads(threads)
        with torch.no_grad():
            chunks = [x_test[i : i + 1000] for i in range(0, len(x_test), 1000)]
            return sum(float(_torch_loss(name, twin, c)) * len(c) for c in chunks) / len(x_test)

    return _Side(label, "torch", run_epoch, test_loss, sum(len(indices) for indices in orders[0]))


def _matmuls_side(model, count):
    """A side that makes, each epoch, as many steps as aekeras's side of `model`'s matmuls alone; None where they are not listed.

    The matmuls are `step_profile.training_matmuls`' (the step's own,
    in its batch shards), on operands of their shapes, with nothing
    between them but a scalar sum that keeps each, and no step waiting on
    the one before: its throughput bounds what any step that makes those
    matmuls could reach on this process's kernels and threads.
    """
    model.compile(optimizer=optimizers.Adam(1e-3))  # the default batch shards
    matmuls = step_profile.training_matmuls(model, BATCH_SIZE)
    if matmuls is None:
        return None
    generator = tf.random.Generator.from_seed(0)
    operands = [[tf.Variable(generator.normal(shape)) for shape in m.operand_shapes()] for m in matmuls]
    samples = trained_per_epoch(count)

    @tf.function
    def steps(number):
        total = tf.constant(0.0)
        for _ in tf.range(number):
            for matmul, (a, b) in zip(matmuls, operands, strict=True):
                # One element of each product: a use that keeps it, at no cost beside it.
                total += tf.matmul(a, b, transpose_a=matmul.transpose_a, transpose_b=matmul.transpose_b)[0, 0]
        return total

    def run_epoch(epoch):
        steps(tf.constant(samples // BATCH_SIZE)).numpy()

    return _Side(MATMULS_ALONE, "matmuls", run_epoch, lambda: None, samples)


def trained_per_epoch(count, batch_size=BATCH_SIZE):
    """The examples of `count` a shuffled `aekeras.data` pipeline serves an epoch (its short last batch left out)."""
    return kept_examples(count, batch_size, drops_remainder_by_default(True, count, batch_size))


def _epoch_orders(count, seed, epochs):
    """The batches of indices `aekeras.data` serves each epoch, for the PyTorch sides."""
    batches = index_batches(
        count, BATCH_SIZE, True, seed, drops_remainder_by_default(True, count, BATCH_SIZE)
    )
    # Copies: the iterator gives read-only arrays, which torch warns of.
    return [[torch.from_numpy(b.copy()) for b in batches.as_numpy_iterator()] for _ in range(epochs)]


def _spread(values):
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def _race(sides, epochs):
    """Runs the sides' epochs in turn (rotating who goes first); per side, its figures.

    Throughput is over the epochs after the first (its repeats), each the
    epoch alone (`_Side.run_epoch`); what a call costs beyond its epoch is
    reported apart. Time to target is training time until the test loss
    first reaches the worst final loss of the race.
    """
    for epoch in range(epochs):
        turn = epoch % len(sides)
        for side in sides[turn:] + sides[:turn]:
            started = time.perf_counter()
            inside = side.run_epoch(epoch)
            side.call_seconds.append(time.perf_counter() - started)
            side.epoch_seconds.append(side.call_seconds[-1] if inside is None else inside)
            side.test_losses.append(side.test_loss())
    target = max(side.test_losses[-1] for side in sides if side.kind != "matmuls")
    results = {}
    for side in sides:
        repeats = side.epoch_seconds[1:] or side.epoch_seconds
        reached = next(
            (i for i, loss in enumerate(side.test_losses) if loss is not None and loss <= target), None
        )
        results[side.label] = {
            "kind": side.kind,
            "epoch_seconds": side.epoch_seconds,
            "per_call_seconds": statistics.median(
                call - epoch for call, epoch in zip(side.call_seconds, side.epoch_seconds, strict=True)
            ),
            "test_loss": side.test_losses,
            "samples_per_second": [side.samples / s for s in repeats],
            "throughput": _spread([side.samples / s for s in repeats]),
            "seconds_to_target": None if reached is None else sum(side.epoch_seconds[: reached + 1]),
        }
    return results


def _ratios(race, label, rivals):
    """`label`'s throughput over the best rival's, per repeat and of the medians."""
    best = max(rivals, key=lambda r: race[r]["throughput"]["median"])
    per_repeat = [
        mine / max(race[r]["samples_per_second"][i] for r in rivals)
        for i, mine in enumerate(race[label]["samples_per_second"])
    ]
    ratio = race[label]["throughput"]["median"] / race[best]["throughput"]["median"]
    return {"ratio": ratio, "spread": _spread(per_repeat), "rival": best}


def model_race(name, split, settings, seed=0, threads=0):
    """aekeras's defaults (XLA toggled, and one batch shard) against PyTorch eager and compiled, on one model.

    `threads`: TensorFlow's threads per op in this process (0: its own
    choice). Where aekeras trains on one, PyTorch is also timed on one.
    """
    count = len(split[0][0])
    orders = _epoch_orders(count, seed, settings.epochs)
    reference = _keras_model(name, seed)  # built once, for its defaults and its matmuls
    default_jit = reference.default_jit_compile
    toggles = {("aekeras, XLA off" if default_jit else "aekeras, XLA on"): {"jit_compile": not default_jit}}
    toggles.update(_shard_toggle(reference.trains_in_shards, default_jit))
    sides = [
        _keras_side("aekeras", name, split, seed, {}),
        *(_keras_side(label, name, split, seed, options) for label, options in toggles.items()),
        _torch_side("PyTorch eager", name, split, seed, orders, compiled=False),
    ]
    if settings.torch_compile:
        sides.append(_torch_side("PyTorch torch.compile", name, split, seed, orders, compiled=True))
    if threads == 1:
        best = "PyTorch torch.compile, 1 thread" if settings.torch_compile else "PyTorch eager, 1 thread"
        sides.append(_torch_side(best, name, split, seed, orders, settings.torch_compile, threads=1))
    matmuls = _matmuls_side(reference, count)
    sides += [matmuls] if matmuls else []
    race = _race(sides, settings.epochs)
    rivals = [label for label, side in race.items() if side["kind"] == "torch"]
    return {
        "sides": race,
        "versus_pytorch": _ratios(race, "aekeras", rivals),
        "toggles": [{"label": label, **_ratios(race, label, ["aekeras"])} for label in toggles],
        "matmuls_alone": _ratios(race, MATMULS_ALONE, rivals) if matmuls else None,
    }


ONE_SHARD = "aekeras, 1 batch shard"  # the toggle of a model that shards by default


def _shard_toggle(trains_in_shards, jit_compile):
    """`{label: compile options}` of the batch shards the model's default does not use (none on one core)."""
    per_core = shards.default_count(distributed=False, jit_compile=jit_compile)
    if per_core == 1:
        return {}
    if trains_in_shards:
        return {ONE_SHARD: {"batch_shards": 1}}
    return {f"aekeras, {per_core} batch shards": {"batch_shards": per_core}}


def lever_race(split, settings, seed=0):
    """The dense model's speed levers, each against aekeras's default, in one race."""
    count = len(split[0][0])
    whole_epoch = -(-trained_per_epoch(count) // BATCH_SIZE)
    levers = {
        "1 step per call": {"steps_per_execution": 1},
        "whole epoch per call": {"steps_per_execution": whole_epoch},
        "32 steps per call, XLA": {"steps_per_execution": 32, "jit_compile": True},
        "whole epoch per call, XLA": {"steps_per_execution": whole_epoch, "jit_compile": True},
        # Larger batches: more samples per second, fewer updates per epoch;
        # the race's time to target shows which wins.
        "batch 1024": {"batch_size": 1024},
        # Keras's own Adam: an update of some twenty ops per variable, not one kernel.
        "Keras's Adam": {"adam": keras.optimizers.Adam},
    }
    sides = [_keras_side("aekeras", "dense", split, seed, {})]
    for label, options in levers.items():
        options = dict(options)
        batch_size = options.pop("batch_size", BATCH_SIZE)
        sides.append(_keras_side(label, "dense", split, seed, options, batch_size=batch_size))
    race = _race(sides, settings.epochs)
    return {label: _ratios(race, label, ["aekeras"]) for label in levers} | {"sides": race}


def in_fresh_process(task, name, settings):
    """`task` ("race", "levers" or "pipeline") on model `name`, in a fresh process set up as `aekeras train NAME`'s.

    TensorFlow fixes its threads and graph optimizer's settings when it
    starts (`configure_tensorflow`), and whether it runs oneDNN's kernels
    as it loads (`registry.onednn_environment`), so a task run as `aekeras
    train` runs needs a process of its own. Returns the task's results and
    the threads per op TensorFlow had there.
    """
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        settings_json = json.dumps(dataclasses.asdict(settings))
        command = [sys.executable, __file__, "--task", task, name, settings_json, str(result)]
        env = {**os.environ, **registry.onednn_environment(name, {}, os.environ)}
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        answer = json.loads(result.read_text())
        return answer["result"], answer["intra_op_threads"]


def _run_task(task, name, settings_json, result_path):
    """The child's side of `in_fresh_process`."""
    settings = BenchSettings(**json.loads(settings_json))
    settings.cli_epochs = tuple(settings.cli_epochs)
    configure_tensorflow(TrainConfig(model=name))  # as `aekeras train NAME` does
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    split = _split(settings)
    if task == "race":
        result = {**model_race(name, split, settings, threads=threads), "onednn": environment()["onednn"]}
    elif task == "levers":
        result = lever_race(split, settings)
    else:
        result = pipeline_rates(settings, split)
    answer = {"result": result, "intra_op_threads": threads}
    Path(result_path).write_text(json.dumps(answer, default=float))


# --- where the time goes ----------------------------------------------------------


def layer_flops(model):
    """Multiply-add FLOPs (2 per MAC) of one example's forward pass through each dense and conv layer, in order."""
    flops = []
    shape = (1, *model.image_shape)
    for layer in [*model.encoder.layers, *model.decoder.layers]:
        out_shape = layer.compute_output_shape(shape)
        if isinstance(layer, keras.layers.Dense):
            flops.append(2 * layer.kernel.shape[0] * layer.kernel.shape[1])
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            flops.append(2 * out_shape[1] * out_shape[2] * kh * kw * cin * cout)
        shape = out_shape
    return flops


def forward_flops(model):
    """Multiply-add FLOPs (2 per MAC) of one example's forward pass, dense and conv layers."""
    return sum(layer_flops(model))


def training_flops(name):
    """Training FLOPs per example of a raced model's multiply-adds: the forward pass, the weights' gradients, and the inputs' but the first layer's.

    The images need no gradient, so neither side computes the first
    layer's (`step_profile.training_matmuls`; PyTorch's autograd alike).
    """
    flops = layer_flops(_keras_model(name, 0))
    return 3 * sum(flops) - flops[0]


def peak_shares(results):
    """Per raced model, the share of the matmul peak its training reaches: aekeras's default, PyTorch's best, and the throughput target.

    Returns `{name: {"aekeras": ..., "rival": ..., "target": ...,
    "matmuls": ...}}`; the target's share is what aekeras would reach at
    `TARGETS["throughput"]` times PyTorch's best, and `matmuls` that of the
    step's matmuls alone (None where the race had no such side).
    Activations, losses and optimizer updates are not counted, so a share
    near the matmuls' own leaves them no time.
    """
    shares = {}
    for name in MODELS:
        race = results["training"][name]
        per_second = training_flops(name) / results["matmul_peak_flops"]
        rival = race["sides"][race["versus_pytorch"]["rival"]]["throughput"]["median"]
        alone = race["sides"].get(MATMULS_ALONE)
        shares[name] = {
            "aekeras": race["sides"]["aekeras"]["throughput"]["median"] * per_second,
            "rival": rival * per_second,
            "target": TARGETS["throughput"] * rival * per_second,
            "matmuls": alone["throughput"]["median"] * per_second if alone else None,
        }
    return shares


def matmul_peak(size, seconds=1.0):
    """Best measured float32 FLOP/s of a size x size matmul on this machine."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul().numpy()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        matmul().numpy()
        best = max(best, 2 * size**3 / (time.perf_counter() - started))
    return best


# --- the command line against the lecture's loop --------------------------------


def _peak_resident_bytes(pid):
    """The process's own high-water resident set (VmHWM), or 0 once it is gone.

    Not `wait4`'s `ru_maxrss`: Linux counts in it the memory of the process
    that forked the child (this benchmark, with TensorFlow loaded), so every
    command would show at least that.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _timed_run(command, env, poll_seconds=0.05):
    """Wall seconds and peak resident bytes of a command (its exit checked).

    The peak is polled while the command runs; a high-water mark only grows,
    so the last reading misses at most the final `poll_seconds`.
    """
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        peak = 0
        while process.poll() is None:
            peak = max(peak, _peak_resident_bytes(process.pid))
            time.sleep(poll_seconds)
        seconds = time.perf_counter() - started
        if process.returncode:
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed: {stderr.read().decode()[-2000:]}")
    return seconds, peak


def _cli_sides(settings, folder):
    """The commands to time, each a function of the number of epochs."""
    data_dir = os.environ.get(data.DATA_DIR_ENV) or str(
        Path(__file__).resolve().parents[2] / "shared/data/mnist"
    )
    aekeras = str(Path(sys.executable).with_name("aekeras"))
    limit = [] if settings.train_limit is None else ["--limit", str(settings.train_limit)]
    runs = iter(range(10**6))

    def aekeras_train(*extra):
        def command(epochs):
            where = Path(folder) / str(next(runs))
            return [
                aekeras,
                "train",
                "dense",
                "--epochs",
                str(epochs),
                "--quiet",
                "--data-dir",
                data_dir,
                "--run-dir",
                str(where / "runs"),
                "--out",
                str(where / "out"),
                *limit,
                *extra,
            ]

        return command

    def lecture(epochs):
        return [sys.executable, str(LECTURE_LOOP), data_dir, str(epochs), str(settings.train_limit or 0)]

    sides = {"aekeras train dense": (aekeras_train(), {}), "lecture PyTorch loop": (lecture, {})}
    if settings.cli_variants:
        sides["aekeras train dense, oneDNN off"] = (aekeras_train(), {"TF_ENABLE_ONEDNN_OPTS": "0"})
        sides["aekeras train dense --steps-per-execution 1"] = (
            aekeras_train("--steps-per-execution", "1"),
            {},
        )
        # What evaluating the test split every epoch costs (the lecture's loop does not).
        sides["aekeras train dense --validation-freq 0"] = (aekeras_train("--validation-freq", "0"), {})
        # A process-wide setting: only a race of whole processes can compare it.
        sides["aekeras train dense --intra-op-threads 0"] = (aekeras_train("--intra-op-threads", "0"), {})
        # The shards the dense default does not use (none on one core).
        for options in _shard_toggle(_keras_model("dense", 0).trains_in_shards, False).values():
            count = str(options["batch_shards"])
            sides[f"aekeras train dense --batch-shards {count}"] = (
                aekeras_train("--batch-shards", count),
                {},
            )
    return sides


def cli_race(settings, count):
    """Seconds per epoch of whole runs (checkpoints, logs, backup included), alternating the commands.

    An epoch's time is the difference between a long and a short run's wall
    time over their difference in epochs, so start-up, evaluation and
    export cancel out. Peak memory is the long run's. Samples per second
    count what each side trains on of the `count` training images: the
    lecture's loop every one, `aekeras train` all but its short last batch.
    """
    short, long = settings.cli_epochs
    with tempfile.TemporaryDirectory() as folder:
        sides = _cli_sides(settings, folder)
        times = {label: {"epoch_seconds": [], "peak_bytes": []} for label in sides}
        for repeat in range(settings.cli_repeats):
            labels = list(sides)
            turn = repeat % len(labels)
            for label in labels[turn:] + labels[:turn]:
                command, env = sides[label]
                env = {**os.environ, **env}
                short_seconds, _ = _timed_run(command(short), env)
                long_seconds, peak = _timed_run(command(long), env)
                times[label]["epoch_seconds"].append((long_seconds - short_seconds) / (long - short))
                times[label]["peak_bytes"].append(peak)
    for label, side in times.items():
        samples = count if label == "lecture PyTorch loop" else trained_per_epoch(count)
        side["samples_per_second"] = [samples / max(s, 1e-9) for s in side["epoch_seconds"]]
        side["throughput"] = _spread(side["samples_per_second"])
        side["peak_bytes"] = max(side["peak_bytes"])
    versus = _ratios(times, "aekeras train dense", ["lecture PyTorch loop"])
    return {"sides": times, "versus_lecture": versus}


# --- data, serving, LiteRT ----------------------------------------------------------


def epoch_reader(dataset, graph=True):
    """A function that reads one epoch of `dataset` and returns how many images it had.

    `graph`: read as `fit` reads it, from inside a compiled function (here
    one `reduce` per epoch); else batch by batch in a Python loop, which
    adds Python's cost per batch to the pipeline's own.
    """
    if not graph:
        return lambda: sum(int(batch.shape[0]) for batch in dataset)
    count = tf.function(
        lambda: dataset.reduce(
            tf.constant(0, tf.int64), lambda n, batch: n + tf.cast(tf.shape(batch)[0], tf.int64)
        )
    )
    return lambda: int(count())


def _delivery(dataset, seconds, graph=True):
    """Images per second a pipeline delivers alone (read by `epoch_reader`), after one warm pass."""
    epoch = epoch_reader(dataset, graph)
    epoch()
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        images += epoch()
    return images / (time.perf_counter() - started)


def pipeline_rates(settings, split):
    """`aekeras.data` alone, MNIST in memory and a folder of MNIST PNGs, against the dense model's training.

    Each pipeline is shuffled every epoch and keeps 8-bit pixels as stored,
    as training reads it (a shuffled order gathers rows from all over the
    table, an ordered one walks it; the model scales the pixels in its step).
    The pipelines are read in `settings.pipeline_rounds` rounds, and before
    each reading the dense default trains an epoch with `fit` in the same
    process, so the rate it consumes is measured beside the rates
    delivered, and the machine's drift reaches every pipeline alike (in
    one reading each, the same in-memory table read at 1.44M images/s as
    in memory and at 2.07M as a cached folder). Run in a process set up as
    `aekeras train dense` sets up its own (`in_fresh_process`), since that
    setup changes how fast an epoch's iterator starts.
    Returns `{"images_per_second": ..., "readings": ...,
    "python_loop_images_per_second": ..., "folder_decoding": ...,
    "consumed": ...}`: images per second read as `fit` reads them (the
    median of each pipeline's readings, and every reading), and of one
    reading in a Python loop; the folder's one-time decoding into memory;
    and the median of the training epochs' samples per second.
    """
    options = dict(batch_size=BATCH_SIZE, value_range=(-1, 1), shuffle=True, keep_uint8=True)
    seconds = settings.throughput_seconds
    consumed = []
    trainer = _keras_side("aekeras", "dense", split, 0, {})
    trainer.run_epoch(0)  # tracing, left out

    def train_epoch():
        consumed.append(trainer.samples / trainer.run_epoch(len(consumed) + 1))

    with tempfile.TemporaryDirectory() as folder:
        pixels = split[0][0].images[: settings.png_images, ..., 0]
        _write_pngs(Path(folder) / "train", pixels)
        _write_pngs(Path(folder) / "test", split[0][1].images[: len(pixels) // 10, ..., 0])
        started = time.perf_counter()
        cached = data.load(folder, "train", **options)
        decoding = len(pixels) / (time.perf_counter() - started)
        pipelines = {
            "in memory": data.load("mnist", "train", limit=settings.train_limit, **options),
            "PNG folder, cached": cached,
            "PNG folder, decoded as read": data.load(folder, "train", memory_limit=1, **options),
        }
        readings = {label: [] for label in pipelines}
        for _ in range(settings.pipeline_rounds):
            for label, dataset in pipelines.items():
                train_epoch()
                readings[label].append(_delivery(dataset, seconds))
        loop_rates = {label: _delivery(dataset, seconds, graph=False) for label, dataset in pipelines.items()}
    train_epoch()
    return {
        "images_per_second": {label: statistics.median(rates) for label, rates in readings.items()},
        "readings": readings,
        "python_loop_images_per_second": loop_rates,
        "folder_decoding": decoding,
        "consumed": statistics.median(consumed),
    }


def _write_pngs(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:05d}.png")


def _median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def serving(images, settings, seed=0):
    """The dense model's export: SavedModel throughput, and LiteRT latency against it at batch 1."""
    model = _keras_model("dense", seed)
    with tempfile.TemporaryDirectory() as folder:
        path = export.saved_model(model, folder, "model")
        serve = tf.saved_model.load(str(path), tags=["serve"]).signatures["serving_default"]
        repeats = {1: settings.latency_repeats, 256: max(3, settings.latency_repeats // 10)}
        seconds = {}
        for batch, count in repeats.items():
            x = tf.constant(images[:batch])
            seconds[batch] = _median_seconds(lambda x=x: serve(images=x)["score"].numpy(), count)
        one = images[:1]
        latency, sizes = {"SavedModel": seconds[1]}, {}
        for quantize in tflite.QUANTIZATIONS:
            runner = tflite.Runner(tflite.convert(path, quantize, images=images[:100]))
            sizes[quantize] = runner.path.stat().st_size
            latency[f"LiteRT {quantize}"] = _median_seconds(
                lambda runner=runner: runner("serving_default", images=one), settings.latency_repeats
            )
    return {
        "saved_model_images_per_second": {batch: batch / s for batch, s in seconds.items()},
        "latency_seconds": latency,
        "tflite_bytes": sizes,
    }


# --- one run, and its report ----------------------------------------------------


def _split(settings):
    """MNIST's training and test examples in memory, as `aekeras.data` holds them."""
    source = data.open_source("mnist")
    train, test = source.examples("train"), source.examples("test")
    if settings.train_limit:
        train = train.subset(np.arange(settings.train_limit))
    if settings.test_limit:
        test = test.subset(np.arange(settings.test_limit))
    return (train, test), source.spec


def run(settings=None, progress=print):
    """Runs every benchmark; returns a JSON-ready dict of results."""
    settings = settings or BenchSettings()
    split = _split(settings)
    (train, test), _ = split
    results = {
        "settings": dataclasses.asdict(settings),
        "environment": {
            **environment(),
            "torch": torch.__version__,
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
        },
        "training": {},
    }
    progress("matmul peak")
    peaks = [matmul_peak(settings.matmul_size)]
    results["intra_op_threads"] = {}
    for name in MODELS:
        progress(f"training race: {name}")
        results["training"][name], results["intra_op_threads"][name] = in_fresh_process(
            "race", name, settings
        )
        progress("  " + _train_line(name, results["training"][name]))
        if name == "dense":
            # Again, right after the race it is compared with: this machine's
            # speed drifts over minutes, and the higher peak is the fair one.
            peaks.append(matmul_peak(settings.matmul_size))
    results["matmul_peaks_flops"] = peaks
    results["matmul_peak_flops"] = max(peaks)
    progress("levers (dense)")
    results["levers"], _ = in_fresh_process("levers", "dense", settings)
    progress("command line against the lecture's loop")
    results["cli"] = cli_race(settings, len(train))
    progress("input pipeline")
    results["pipeline"], _ = in_fresh_process("pipeline", "dense", settings)
    progress("serving")
    results["serving"] = serving(data.unit_scale(test.images), settings)
    return results


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _train_line(name, race):
    versus = race["versus_pytorch"]
    mine, rival = race["sides"]["aekeras"], race["sides"][versus["rival"]]
    spread = versus["spread"]
    return (
        f"train {name}: aekeras/PyTorch throughput {versus['ratio']:.2f}x "
        f"(aekeras {mine['throughput']['median']:,.0f} samples/s vs {versus['rival']} "
        f"{rival['throughput']['median']:,.0f}; repeats {spread['low']:.2f}-{spread['high']:.2f}x; "
        f"final test loss {mine['test_loss'][-1]:.4f} vs {rival['test_loss'][-1]:.4f})"
    )


def targets(results):
    """`(what, target, measured)` for each target of the default path."""
    pipeline = results["pipeline"]
    rows = [
        (
            f"train {name}: aekeras/PyTorch's best throughput",
            TARGETS["throughput"],
            results["training"][name]["versus_pytorch"]["ratio"],
        )
        for name in MODELS
    ]
    rows.append(
        (
            "aekeras train dense epoch / lecture PyTorch loop epoch, throughput",
            TARGETS["cli_epoch"],
            results["cli"]["versus_lecture"]["ratio"],
        )
    )
    rows.append(
        (
            "dense step, fraction of the matmul peak",
            TARGETS["peak_fraction"],
            peak_shares(results)["dense"]["aekeras"],
        )
    )
    for label, rate in pipeline["images_per_second"].items():
        if label in TARGET_PIPELINES:
            rows.append(
                (
                    f"input pipeline ({label}) / dense training",
                    TARGETS["pipeline"],
                    rate / pipeline["consumed"],
                )
            )
    return rows


def summary_lines(results):
    """One line per model with the defaults, then one per variant and figure."""
    lines = [_train_line(name, results["training"][name]) for name in MODELS]
    for name in MODELS:
        for toggled in results["training"][name]["toggles"]:
            lines.append(
                f"train {name}, {toggled['label']}: {toggled['ratio']:.2f}x aekeras's default "
                f"(repeats {toggled['spread']['low']:.2f}-{toggled['spread']['high']:.2f}x)"
            )
    for name in MODELS:
        alone = results["training"][name].get("matmuls_alone")
        if alone:
            lines.append(
                f"train {name}, {MATMULS_ALONE}, no other op: {alone['ratio']:.2f}x PyTorch's best "
                f"(repeats {alone['spread']['low']:.2f}-{alone['spread']['high']:.2f}x)"
            )
    for label, lever in results["levers"].items():
        if label != "sides":
            lines.append(
                f"train dense, {label}: {lever['ratio']:.2f}x aekeras's default "
                f"(repeats {lever['spread']['low']:.2f}-{lever['spread']['high']:.2f}x)"
            )
    cli = results["cli"]
    sides = cli["sides"]
    mine, lecture = sides["aekeras train dense"], sides["lecture PyTorch loop"]
    lines.append(
        f"cli dense epoch: aekeras/lecture PyTorch loop throughput {cli['versus_lecture']['ratio']:.2f}x "
        f"({statistics.median(mine['epoch_seconds']):.2f} vs {statistics.median(lecture['epoch_seconds']):.2f} s "
        f"per epoch); peak memory {mine['peak_bytes'] / 2**20:.0f} vs {lecture['peak_bytes'] / 2**20:.0f} MiB"
    )
    for name, share in peak_shares(results).items():
        alone = "" if share["matmuls"] is None else f"; its matmuls alone {100 * share['matmuls']:.1f}%"
        lines.append(
            f"{name} step: {100 * share['aekeras']:.1f}% of the matmul peak (PyTorch's best "
            f"{100 * share['rival']:.1f}%; the throughput target needs {100 * share['target']:.1f}%{alone})"
        )
    pipeline = results["pipeline"]
    for label, rate in pipeline["images_per_second"].items():
        lines.append(
            f"input pipeline, {label}: {rate:,.0f} images/s ({_readings_text(pipeline, label)}), "
            f"{rate / pipeline['consumed']:.1f}x dense training (in a Python loop {_loop_rate_text(pipeline, label)})"
        )
    lines.append(f"input pipeline, PNG folder, decoding it once: {pipeline['folder_decoding']:,.0f} images/s")
    serving_results = results["serving"]
    rates = serving_results["saved_model_images_per_second"]
    lines.append(f"serving SavedModel: {rates[1]:,.0f} images/s at batch 1, {rates[256]:,.0f} at batch 256")
    latency = serving_results["latency_seconds"]
    lines.append(
        f"LiteRT int8 / SavedModel single-image latency: {latency['LiteRT int8'] / latency['SavedModel']:.3f}"
    )
    return lines


def _target_rows(results):
    rows = ["| target | wanted | measured | |", "| --- | --- | --- | --- |"]
    for what, wanted, measured in targets(results):
        verdict = "met" if measured >= wanted else f"short by {wanted / measured:.2f}x"
        shown = (lambda v: f"{100 * v:.1f}%") if "fraction" in what else (lambda v: f"{v:.2f}x")
        rows.append(f"| {what} | {shown(wanted)} | {shown(measured)} | {verdict} |")
    return rows


def _race_rows(race):
    rows = [
        "| side | samples/s (median) | repeats | first epoch s | s to target | final test loss | per call s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, side in race.items():
        spread = side["throughput"]
        to_target, loss = side["seconds_to_target"], side["test_loss"][-1]
        rows.append(
            f"| {label} | {spread['median']:,.0f} | {spread['low']:,.0f}-{spread['high']:,.0f} | "
            f"{side['epoch_seconds'][0]:.1f} | {'-' if to_target is None else f'{to_target:.1f}'} | "
            f"{'-' if loss is None else f'{loss:.4f}'} | {side['per_call_seconds']:.3f} |"
        )
    return rows


def _training_section(results):
    out = [
        "## Training against PyTorch",
        "",
        "Each race starts every side from the same weights (the Keras model's, copied into the PyTorch "
        "twin) and feeds them the same batches in the same order (`aekeras.data`'s per-epoch "
        "permutation, less its short last batch); Adam 1e-3 (epsilon 1e-7 on both sides), batch 256. "
        "aekeras trains with `model.fit` "
        "on its own `tf.data` pipeline, which delivers the 8-bit pixels as stored for the model to "
        "scale in its step, as `aekeras train` feeds it, with the model's default `compile` "
        "settings; PyTorch runs the "
        "lecture's eager loop and the same step under `torch.compile` (batches gathered outside the "
        "timing). Sides alternate epoch by epoch; the first epoch (tracing, compiling) is left out of "
        "the throughput, the others are the repeats. An aekeras epoch is timed inside `fit`, from "
        "its start to its end (a callback): the race calls `fit` once per epoch to alternate, and "
        "what each call costs beyond its epoch (building the epoch iterator and callbacks, tearing "
        "them down), which a user training for many epochs in one `fit` pays once, is the table's "
        "last column (median). The command-line race below keeps every cost. Time to target: training time until the test "
        "loss first reaches the worst final loss of the race. Each model races in a fresh process "
        "that gives TensorFlow the threads per op `aekeras train` gives it "
        f"({_threads_text(results)}); aekeras's batch shards keep every core busy even on one "
        "thread per op. PyTorch runs on 2 threads, and where aekeras runs on one per op, PyTorch "
        "is timed on one as well. "
        f"Where a model's layers are all dense, `{MATMULS_ALONE}` races too: each epoch, as many steps "
        "as aekeras's of the matmuls its training step makes (`step_profile.training_matmuls`, in its "
        "batch shards) and no other op; it trains nothing, so it has no test loss.",
    ]
    for name in MODELS:
        race = results["training"][name]
        out += ["", f"### {name}", "", *_race_rows(race["sides"])]
    out += [
        "",
        "## Levers (dense)",
        "",
        "The dense model's levers against aekeras's default, in one race.",
        "",
    ]
    out += _race_rows(results["levers"]["sides"])
    return out


def _cli_section(results):
    cli = results["cli"]
    short, long = results["settings"]["cli_epochs"]
    out = [
        "## The command line against the lecture's loop",
        "",
        f"Whole processes, alternated: an epoch is (wall time of {long} epochs - wall time of {short}) / "
        f"{long - short}, so start-up, evaluation and export cancel out and per-epoch checkpoints, backup, "
        "history, TensorBoard logs and aekeras's evaluation of the test split stay in. The lecture's loop is `benchmarks/lecture_loop.py` "
        "(DataLoader, eager PyTorch). Samples per second count the images each side trains on an "
        "epoch: the lecture's loop every one, `aekeras train` all but its short last batch. Peak "
        "memory: the longer run's own high-water resident set (`VmHWM`, polled every 50 ms).",
        "",
        "| command | s per epoch (median) | repeats | samples/s | peak memory |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, side in cli["sides"].items():
        seconds = side["epoch_seconds"]
        out.append(
            f"| {label} | {statistics.median(seconds):.2f} | {min(seconds):.2f}-{max(seconds):.2f} | "
            f"{side['throughput']['median']:,.0f} | {side['peak_bytes'] / 2**20:.0f} MiB |"
        )
    return out


def _roofline_section(results):
    peak = results["matmul_peak_flops"]
    out = [
        "## Roofline",
        "",
        f"Measured float32 matmul peak ({results['settings']['matmul_size']}^2, best of repeated runs, "
        f"before and after the dense race: {_peaks_text(results)} GFLOP/s): {peak / 1e9:.1f} GFLOP/s. "
        "Each race's medians as shares of it, training FLOPs per sample taken as the multiply-adds of "
        "the forward pass, the weights' gradients and the inputs' gradients but the first layer's, "
        "which the images do not need (activations, losses and the optimizer not counted); the share "
        f"that {TARGETS['throughput']:.1f}x PyTorch's best would take; and the share of the race's "
        f"`{MATMULS_ALONE}` side, a step of the model's own matmuls and no other op, where its layers "
        "are all dense: what a step doing nothing else reaches on these kernels.",
        "",
        "| model | training MFLOP per sample | aekeras | PyTorch's best | the throughput target needs "
        "| its matmuls alone |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, share in peak_shares(results).items():
        alone = "-" if share["matmuls"] is None else f"{100 * share['matmuls']:.1f}%"
        out.append(
            f"| {name} | {training_flops(name) / 1e6:.2f} | {100 * share['aekeras']:.1f}% | "
            f"{100 * share['rival']:.1f}% | {100 * share['target']:.1f}% | {alone} |"
        )
    return [*out, ""]


def _systems_section(results):
    pipeline, serving_results = results["pipeline"], results["serving"]
    out = [
        *_roofline_section(results),
        "## Input pipeline",
        "",
        "`aekeras.data` alone, against what the dense default consumed in the same process: "
        f"the pipelines are read in {results['settings']['pipeline_rounds']} rounds, one after "
        "another, and the dense default trains an epoch with `fit` before every reading "
        f"({pipeline['consumed']:,.0f} samples/s, median). The PNG folder holds the first "
        f"{results['settings']['png_images']:,} MNIST training images in its `train/` folder, so its "
        "epochs are as long as the in-memory ones (an epoch's start costs the same whatever its "
        "length), and a tenth as many test images in `test/`: decoded once into memory where they "
        "fit (cached), or a batch at a time as "
        "they are read (`memory_limit=1`, the path for folders that do not fit; not a target, as "
        "PNG decoding on the machine's cores bounds it). Each pipeline is shuffled every epoch "
        "and delivers the 8-bit pixels as stored, as training reads it (`keep_uint8`), in a "
        "process set up as `aekeras train dense` sets up its own, and "
        "read as `fit` reads it, from inside a compiled function (the targets' figure), and in a "
        "Python loop, which adds Python's cost per batch.",
        "",
        "| pipeline | images/s, read as `fit` reads (median) | readings | / dense training "
        "| images/s, Python loop |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {label} | {rate:,.0f} | {_readings_text(pipeline, label)} | "
            f"{rate / pipeline['consumed']:.1f}x | {_loop_rate_text(pipeline, label)} |"
            for label, rate in pipeline["images_per_second"].items()
        ],
        "",
        f"Decoding the folder's training images into memory, once: {pipeline['folder_decoding']:,.0f} images/s.",
        "",
        "## Serving (the lecture's dense model)",
        "",
        "| SavedModel `serving_default` batch | images/s |",
        "| --- | --- |",
        *[f"| {b} | {v:,.0f} |" for b, v in serving_results["saved_model_images_per_second"].items()],
        "",
        "| single image, `serving_default` | median latency (ms) | / SavedModel | file |",
        "| --- | --- | --- | --- |",
    ]
    latency = serving_results["latency_seconds"]
    for name, seconds in latency.items():
        size = serving_results["tflite_bytes"].get(name.split()[-1])
        out.append(
            f"| {name} | {1e3 * seconds:.3f} | {seconds / latency['SavedModel']:.3f} | "
            f"{f'{size / 1024:.0f} KiB' if size else ''} |"
        )
    return out


def _loop_rate_text(pipeline, label):
    return f"{pipeline['python_loop_images_per_second'][label]:,.0f}"


def _readings_text(pipeline, label):
    return ", ".join(f"{rate / 1e6:.2f}M" for rate in pipeline["readings"][label])


def _peaks_text(results):
    return " and ".join(f"{peak / 1e9:.1f}" for peak in results["matmul_peaks_flops"])


def _threads_text(results):
    threads = results["intra_op_threads"]
    return ", ".join(f"{name} {threads[name] or 'one per core'}" for name in MODELS)


def _onednn_text(results):
    return ", ".join(
        f"{name} {'on' if results['training'][name].get('onednn') else 'off'}" for name in MODELS
    )


def _defaults_section(results):
    """Which levers the defaults use, and the figures of this run that decided it."""
    sharded = [
        name
        for name in MODELS
        if any(toggled["label"] == ONE_SHARD for toggled in results["training"][name]["toggles"])
    ]
    out = [
        "## What the defaults use, and what did not win",
        "",
        "aekeras compiles every model with 32 steps per call and without XLA, and of the models raced "
        f"here trains {', '.join(sharded) or 'none'} in one batch shard per core "
        f"({shards.default_count(distributed=False, jit_compile=False)} here; "
        "`BaseAutoencoder.default_steps_per_execution`, `default_jit_compile`, "
        "`trains_in_shards`); in this run:",
        "",
    ]
    for name in MODELS:
        for toggled in results["training"][name]["toggles"]:
            spread = toggled["spread"]
            out.append(
                f"- {name}, {toggled['label']}: {toggled['ratio']:.2f}x the default "
                f"(repeats {spread['low']:.2f}-{spread['high']:.2f}x)."
            )
    for label, lever in results["levers"].items():
        if label != "sides":
            spread = lever["spread"]
            out.append(
                f"- dense, {label}: {lever['ratio']:.2f}x the default "
                f"(repeats {spread['low']:.2f}-{spread['high']:.2f}x)."
            )
    cli = results["cli"]["sides"]
    default = cli["aekeras train dense"]["throughput"]["median"]
    for label, side in cli.items():
        if label != "aekeras train dense" and label.startswith("aekeras"):
            out.append(f"- `{label}`: {side['throughput']['median'] / default:.2f}x the CLI's default epoch.")
    out += [
        "",
        "Batch shards split each batch into parts that the cores train side by side, with the whole "
        "batch's update; under XLA a model trains one shard. "
        "XLA is a default only where its repeats all beat the plain graph: it takes a compile of "
        "seconds per run, and on the CPU it loses on convolutions. A whole epoch per call is not the "
        "default either: the progress bar and per-batch callbacks would then stand still until the "
        "epoch ends. Threads per op are the model's (`ModelEntry.default_intra_op_threads`: "
        f"{_threads_text(results)}) unless `--intra-op-threads` says otherwise; TensorFlow fixes them "
        "when it starts, so only whole processes can compare them (`--intra-op-threads 0`, "
        "TensorFlow's own choice, above). oneDNN's kernels, which TensorFlow runs by default only on CPUs "
        "with AVX-512-class features, are on for the models that train faster on them "
        f"(`ModelEntry.trains_faster_on_onednn`; in this run: {_onednn_text(results)}). "
        "Batch size is the lecture's 256: `batch 1024` above makes a quarter "
        "of the updates per epoch, so its time to target, not its samples per second, says whether "
        "it wins. Adam is `aekeras.optimizers.Adam` (each variable's update one `ResourceApplyAdam` "
        "kernel, Keras's arithmetic); `Keras's Adam` above is Keras's own.",
    ]
    return out


def markdown(results, command):
    """BENCHMARKS.md for a run's results: every figure from `results`."""
    env = results["environment"]
    out = [
        "# Benchmarks",
        "",
        f"Produced by `{command}`; every figure below comes from that one run.",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores, no GPU used; Python {env['python']}, TensorFlow "
        f"{env['tensorflow']}, Keras {env['keras']}, PyTorch {env['torch']}, NumPy {env['numpy']}. "
        f"Settings: `{results['settings']}`.",
        "",
        "## Summary",
        "",
        "```",
        *summary_lines(results),
        "```",
        "",
        "## Targets",
        "",
        *_target_rows(results),
        "",
        *_training_section(results),
        "",
        *_cli_section(results),
        "",
        *_defaults_section(results),
        "",
        *_systems_section(results),
    ]
    return "\n".join(out) + "\n"


def load_results(path):
    """A run's results as `run` returned them (JSON turned the batch sizes into strings)."""
    with open(path) as f:
        results = json.load(f)
    rates = results["serving"]["saved_model_images_per_second"]
    results["serving"]["saved_model_images_per_second"] = {int(b): v for b, v in rates.items()}
    results["settings"]["cli_epochs"] = tuple(results["settings"]["cli_epochs"])
    return results


def main(argv=None):
    """`python benchmarks/bench.py [--quick] [--out BENCHMARKS.md]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to prove it works")
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--from-json", help="rewrite OUT from a run's saved results instead of running")
    parser.add_argument("--task", nargs=4, help=argparse.SUPPRESS)  # in_fresh_process's child
    args = parser.parse_args(argv)
    if args.task:
        _run_task(*args.task)
        return 0
    # Before the run, not after it: a folder that cannot be written lost a
    # whole run's results once.
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {args.out}: cannot make its folder ({error.strerror}); expected a writable path")
    if args.from_json:
        results = load_results(args.from_json)
        command = results["command"]
    else:
        results = run(BenchSettings.quick() if args.quick else BenchSettings())
        results["command"] = command = "python benchmarks/bench.py" + (" --quick" if args.quick else "")
        with open(f"{args.out}.json", "w") as f:
            json.dump(results, f, indent=2, default=float)
    with open(args.out, "w") as f:
        f.write(markdown(results, command))
    print("\n".join(summary_lines(results)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
