"""Benchmarks: aekeras against the lecture's PyTorch, and where time goes.

Everything is measured in one run on the same data, alternating the two
sides epoch by epoch, and reported as ratios, so a shared, noisy machine
moves both sides alike. `run(quick=False)` returns the results and
`markdown(results)` renders BENCHMARKS.md. Needs the `bench` extra
(`pip install -e ".[bench]"`, torch 2.13.0 CPU; `make bench` installs it).
"""

import dataclasses
import platform
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
import torch
from torch import nn
from torch.nn import functional as F

from aekeras import data, export, registry, tflite
from aekeras.training import environment

BATCH_SIZE = 256
STEPS_PER_EXECUTION = 32  # the lever `aekeras train --steps-per-execution 32` pulls


@dataclasses.dataclass
class BenchSettings:
    """Sizes of one benchmark run; `quick()` proves it works in seconds."""

    epochs: int = 5
    train_limit: int = None
    test_limit: int = None
    latency_repeats: int = 300
    throughput_seconds: float = 3.0
    matmul_size: int = 2048

    @classmethod
    def quick(cls):
        return cls(
            epochs=2,
            train_limit=2048,
            test_limit=512,
            latency_repeats=20,
            throughput_seconds=0.3,
            matmul_size=512,
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
            elif isinstance(layer, keras.layers.Resizing):
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


# --- training, side by side ----------------------------------------------------


def training_race(name, train, test, epochs, *, jit_compile=False, steps_per_execution=1, seed=0):
    """Trains the Keras model and its PyTorch twin on the same batches, alternating epochs.

    Both start from the same weights, see the same permutation of the data
    each epoch, and use Adam 1e-3 (epsilon 1e-7 on both) and batch 256.

    Returns:
        `{"keras": {"epoch_seconds", "test_loss"}, "torch": {...}}`, one
        entry per epoch; test losses after each epoch (not timed).
    """
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    model = _keras_model(name, seed)
    twin = _torch_twin(name, model)
    low, high = model.value_range
    x_train, x_test = train * (high - low) + low, test * (high - low) + low
    to_torch = (
        (lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())) if name == "conv" else torch.from_numpy
    )
    t_test = to_torch(x_test)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3, eps=1e-7)
    rng = np.random.default_rng(seed)
    result = {side: {"epoch_seconds": [], "test_loss": []} for side in ("keras", "torch")}
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        epoch_keras, epoch_torch = x_train[order], to_torch(x_train[order])
        started = time.perf_counter()
        model.fit(epoch_keras, batch_size=BATCH_SIZE, epochs=1, shuffle=False, verbose=0)
        result["keras"]["epoch_seconds"].append(time.perf_counter() - started)
        result["keras"]["test_loss"].append(float(model.evaluate(x_test, batch_size=1000, verbose=0)[0]))

        twin.train()
        started = time.perf_counter()
        for i in range(0, len(epoch_torch), BATCH_SIZE):
            optimizer.zero_grad()
            loss = _torch_loss(name, twin, epoch_torch[i : i + BATCH_SIZE])
            loss.backward()
            optimizer.step()
        result["torch"]["epoch_seconds"].append(time.perf_counter() - started)
        with torch.no_grad():
            losses = [
                float(_torch_loss(name, twin, t_test[i : i + 1000])) * len(t_test[i : i + 1000])
                for i in range(0, len(t_test), 1000)
            ]
        result["torch"]["test_loss"].append(sum(losses) / len(t_test))
    for side in result.values():
        later = side["epoch_seconds"][1:] or side["epoch_seconds"]
        side["samples_per_second"] = len(x_train) / statistics.median(later)
    target = max(result["keras"]["test_loss"][-1], result["torch"]["test_loss"][-1])
    for side in result.values():
        reached = next(i for i, loss in enumerate(side["test_loss"]) if loss <= target)
        side["seconds_to_target"] = sum(side["epoch_seconds"][: reached + 1])
    result["target_loss"] = target
    result["model"] = model
    return result


# --- where the time goes --------------------------------------------------------


def forward_flops(model):
    """Multiply-add FLOPs (2 per MAC) of one example's forward pass, dense and conv layers."""
    flops = 0
    shape = (1, *model.image_shape)
    for layer in [*model.encoder.layers, *model.decoder.layers]:
        out_shape = layer.compute_output_shape(shape)
        if isinstance(layer, keras.layers.Dense):
            flops += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            flops += 2 * out_shape[1] * out_shape[2] * kh * kw * cin * cout
        shape = out_shape
    return flops


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


def pipeline_throughput(seconds, limit=None):
    """Images per second `aekeras.data.load` delivers alone (after its cache is warm)."""
    dataset = data.load("mnist", "train", batch_size=BATCH_SIZE, value_range=(-1, 1), limit=limit)
    for _ in dataset:  # fills the cache
        pass
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for batch in dataset:
            images += int(batch.shape[0])
    return images / (time.perf_counter() - started)


def _median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def inference(model, images, settings):
    """SavedModel batch throughput and single-image latency of Keras and LiteRT."""
    with tempfile.TemporaryDirectory() as folder:
        path = export.saved_model(model, folder, "model")
        serve = tf.saved_model.load(str(path), tags=["serve"]).signatures["serving_default"]
        throughput = {}
        for batch in (1, 32, 256):
            x = tf.constant(images[:batch])
            seconds = _median_seconds(
                lambda x=x: serve(images=x)["score"].numpy(), max(3, settings.latency_repeats // 10)
            )
            throughput[batch] = batch / seconds
        one = images[:1]
        low, high = model.value_range
        scaled = one * (high - low) + low
        latency = {
            "keras model(x)": _median_seconds(lambda: model(scaled).numpy(), settings.latency_repeats),
            "keras predict(x)": _median_seconds(
                lambda: model.predict(scaled, verbose=0), settings.latency_repeats // 3 + 1
            ),
        }
        sizes = {}
        calibration = images[:100]
        for quantize in tflite.QUANTIZATIONS:
            runner = tflite.Runner(tflite.convert(path, quantize, images=calibration))
            sizes[quantize] = runner.path.stat().st_size
            latency[f"LiteRT {quantize}"] = _median_seconds(
                lambda runner=runner: runner("serving_default", images=one), settings.latency_repeats
            )
    return {"saved_model_images_per_second": throughput, "latency_seconds": latency, "tflite_bytes": sizes}


def run(settings=None, progress=print):
    """Runs every benchmark; returns a JSON-ready dict of results."""
    settings = settings or BenchSettings()
    train_images = data.load_arrays("mnist", "train")[0][: settings.train_limit]
    test_images = data.load_arrays("mnist", "test")[0][: settings.test_limit]
    results = {
        "settings": dataclasses.asdict(settings),
        "environment": {**environment(), "torch": torch.__version__, "cpu": _cpu_name()},
    }
    progress("matmul peak")
    peak = matmul_peak(settings.matmul_size)
    results["matmul_peak_flops"] = peak
    results["training"] = {}
    # Each race: model, XLA, steps per execution; the first of each model
    # is `aekeras train`'s default. XLA cannot compile the conv model's
    # gradient on CPU (no ResizeNearestNeighborGrad kernel).
    races = [
        ("dense", False, 1),
        ("dense", False, STEPS_PER_EXECUTION),
        ("dense", True, 1),
        ("conv", False, 1),
        ("vae", False, 1),
        ("vae", True, 1),
    ]
    for name, jit, steps in races:
        label = f"{name}{' (XLA)' if jit else ''}{f' ({steps} steps per execution)' if steps > 1 else ''}"
        progress(f"training race: {label}")
        race = training_race(
            name, train_images, test_images, settings.epochs, jit_compile=jit, steps_per_execution=steps
        )
        model = race.pop("model")
        flops = 3 * forward_flops(model)  # forward + backward ~ 3x forward
        race["train_flops_per_sample"] = flops
        race["achieved_flops"] = flops * race["keras"]["samples_per_second"]
        race["peak_fraction"] = race["achieved_flops"] / peak
        race["throughput_ratio"] = race["keras"]["samples_per_second"] / race["torch"]["samples_per_second"]
        results["training"][label] = race
        progress(
            f"  {label}: aekeras/PyTorch throughput {race['throughput_ratio']:.2f}x, "
            f"final test loss {race['keras']['test_loss'][-1]:.4f} vs {race['torch']['test_loss'][-1]:.4f}, "
            f"{100 * race['peak_fraction']:.1f}% of matmul peak"
        )
        if name == "dense" and not jit and steps == 1:
            dense_model = model
    progress("input pipeline")
    delivered = pipeline_throughput(settings.throughput_seconds, settings.train_limit)
    consumed = max(r["keras"]["samples_per_second"] for r in results["training"].values())
    results["pipeline"] = {
        "images_per_second": delivered,
        "fastest_training_consumption": consumed,
        "ratio": delivered / consumed,
    }
    progress(f"  pipeline/training: {delivered / consumed:.1f}x")
    progress("inference")
    results["inference"] = inference(dense_model, test_images, settings)
    latency = results["inference"]["latency_seconds"]
    progress(f"  int8 latency / keras model(x): {latency['LiteRT int8'] / latency['keras model(x)']:.3f}")
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


def summary_lines(results):
    """One line per ratio, easy to compare between runs."""
    lines = []
    for label, race in results["training"].items():
        lines.append(
            f"train {label}: aekeras/PyTorch throughput {race['throughput_ratio']:.2f}x "
            f"({race['keras']['samples_per_second']:.0f} vs {race['torch']['samples_per_second']:.0f} samples/s); "
            f"final test loss {race['keras']['test_loss'][-1]:.4f} vs {race['torch']['test_loss'][-1]:.4f}; "
            f"{100 * race['peak_fraction']:.1f}% of matmul peak"
        )
    pipeline = results["pipeline"]
    lines.append(f"input pipeline / fastest training consumption: {pipeline['ratio']:.1f}x")
    latency = results["inference"]["latency_seconds"]
    lines.append(
        f"LiteRT int8 / Keras model(x) single-image latency: "
        f"{latency['LiteRT int8'] / latency['keras model(x)']:.3f}"
    )
    return lines


def markdown(results, command):
    """BENCHMARKS.md for a run's results."""
    env = results["environment"]
    out = [
        "# Benchmarks",
        "",
        f"Produced by `{command}`; every figure below comes from that one run.",
        "",
        f"Machine: {env['cpu']}, 2 cores, no GPU; Python {env['python']}, TensorFlow {env['tensorflow']}, "
        f"Keras {env['keras']}, PyTorch {env['torch']}, NumPy {env['numpy']}. "
        f"Settings: `{results['settings']}`.",
        "",
        "## Summary",
        "",
        "```",
        *summary_lines(results),
        "```",
        "",
        "## Training against PyTorch",
        "",
        "Same architecture and initial weights (copied from the Keras model), same data order, Adam 1e-3 "
        "(epsilon 1e-7 on both sides), batch 256, the two sides alternating epoch by epoch. "
        "Throughput is the median over epochs after the first; time to target is the training time "
        "until the test loss first reaches the worse of the two final losses.",
        "",
        "| model | aekeras samples/s | PyTorch samples/s | ratio | aekeras s to target | PyTorch s to target "
        "| aekeras final test loss | PyTorch final test loss |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, race in results["training"].items():
        k, t = race["keras"], race["torch"]
        out.append(
            f"| {label} | {k['samples_per_second']:.0f} | {t['samples_per_second']:.0f} | "
            f"{race['throughput_ratio']:.2f}x | {k['seconds_to_target']:.1f} | {t['seconds_to_target']:.1f} | "
            f"{k['test_loss'][-1]:.4f} | {t['test_loss'][-1]:.4f} |"
        )
    out += [
        "",
        "## Roofline",
        "",
        f"Measured float32 matmul peak ({results['settings']['matmul_size']}^2, best of repeated runs): "
        f"{results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s. Training FLOPs per sample are 3x the forward "
        "pass's multiply-adds (dense and conv layers; activations and the optimizer not counted).",
        "",
        "| model | train FLOPs/sample | achieved GFLOP/s | fraction of peak |",
        "| --- | --- | --- | --- |",
    ]
    for label, race in results["training"].items():
        out.append(
            f"| {label} | {race['train_flops_per_sample']:,} | {race['achieved_flops'] / 1e9:.2f} | "
            f"{100 * race['peak_fraction']:.1f}% |"
        )
    pipeline = results["pipeline"]
    inference_results = results["inference"]
    out += [
        "",
        "## Input pipeline",
        "",
        f"`aekeras.data.load` alone delivers {pipeline['images_per_second']:,.0f} images/s; the fastest "
        f"training run consumed {pipeline['fastest_training_consumption']:,.0f}: "
        f"{pipeline['ratio']:.1f}x.",
        "",
        "## Inference (the lecture's dense model)",
        "",
        "| SavedModel `serving_default` batch | images/s |",
        "| --- | --- |",
        *[f"| {b} | {v:,.0f} |" for b, v in inference_results["saved_model_images_per_second"].items()],
        "",
        "| single image | median latency (ms) | file |",
        "| --- | --- | --- |",
    ]
    for name, seconds in inference_results["latency_seconds"].items():
        quantize = name.split()[-1]
        size = inference_results["tflite_bytes"].get(quantize)
        out.append(f"| {name} | {1e3 * seconds:.3f} | {f'{size / 1024:.0f} KiB' if size else ''} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    """`python benchmarks/bench.py [--quick] [--out BENCHMARKS.md]`."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="aekeras bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few hundred steps, to prove it works")
    parser.add_argument("--out", default="BENCHMARKS.md")
    args = parser.parse_args(argv)
    results = run(BenchSettings.quick() if args.quick else BenchSettings())
    command = "python benchmarks/bench.py" + (" --quick" if args.quick else "")
    with open(args.out, "w") as f:
        f.write(markdown(results, command))
    with open(f"{args.out}.json", "w") as f:
        json.dump(results, f, indent=2, default=float)
    print("\n".join(summary_lines(results)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
