"""The benchmark: its PyTorch twins are faithful, and its quick mode runs."""

import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

# The benchmark lives outside the package, and needs the `bench` extra
# (PyTorch), which `make bench` installs and the default install does not.
torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench  # noqa: E402
import step_profile  # noqa: E402

from aekeras import optimizers  # noqa: E402
from aekeras.models import shards  # noqa: E402


@pytest.mark.parametrize("name", ["dense", "conv", "vae"])
def test_torch_twin_computes_the_same_function(name, digits):
    model = bench._keras_model(name, seed=0)
    twin = bench._torch_twin(name, model)
    low, high = model.value_range
    x = digits[:8] * (high - low) + low
    if name == "vae":
        expected = model.encoder(x).numpy()
        got = twin.encoder(torch.from_numpy(x)).detach().numpy()
    elif name == "conv":
        expected = model(x).numpy()
        got = twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).detach().numpy().transpose(0, 2, 3, 1)
    else:
        expected = model(x).numpy().reshape(8, -1)
        got = twin(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_forward_flops_of_the_lecture_model():
    model = bench._keras_model("dense", seed=0)
    assert bench.forward_flops(model) == 2 * (784 * 30 + 30 * 784)
    # Training: the pass, both layers' kernel gradients, and the second layer's input gradient.
    assert bench.training_flops("dense") == 5 * 2 * 784 * 30


@pytest.mark.parametrize("name", ["dense", "vae"])
def test_training_flops_are_those_of_the_steps_own_matmuls(name):
    model = bench._keras_model(name, seed=0)
    model.compile(optimizer=optimizers.Adam(1e-3))
    matmuls = step_profile.training_matmuls(model, 256)
    assert bench.training_flops(name) * 256 == sum(matmul.flops for matmul in matmuls)


def test_both_readers_count_every_image_of_an_epoch(mnist_dir):
    import aekeras

    dataset = aekeras.data.load("mnist", "test", limit=1000, batch_size=256, data_dir=mnist_dir)
    # 1,000 images: three full batches and a last one of 232.
    assert bench.epoch_reader(dataset)() == bench.epoch_reader(dataset, graph=False)() == 1000


def test_the_pytorch_sides_train_on_the_batches_aekeras_serves(mnist_dir):
    import aekeras

    source = aekeras.data.open_source("mnist", data_dir=mnist_dir)
    examples = source.examples("test").subset(np.arange(1000))
    served = aekeras.data.make_dataset(examples, source.spec, batch_size=256, shuffle=True, seed=3)
    orders = bench._epoch_orders(1000, 3, epochs=2)
    # 1,000 images: three full batches a side, the short last one (232) left out.
    assert bench.trained_per_epoch(1000) == 768
    for epoch in range(2):
        batches = [b.numpy() for b in served]
        assert [len(b) for b in batches] == [256] * 3
        assert sum(len(indices) for indices in orders[epoch]) == 768
        for batch, indices in zip(batches, orders[epoch], strict=True):
            np.testing.assert_array_equal(batch, aekeras.data.unit_scale(examples.images[indices.numpy()]))
    assert not np.array_equal(orders[0][0], orders[1][0])


def test_peak_memory_is_the_commands_own():
    # wait4's ru_maxrss would count this test process's memory (TensorFlow,
    # PyTorch) in any child it forks; the benchmark reads the child's own.
    own = bench._peak_resident_bytes(os.getpid())
    seconds, peak = bench._timed_run([sys.executable, "-c", "import time; time.sleep(0.5)"], dict(os.environ))
    assert seconds >= 0.5
    assert 1 * 2**20 < peak < own / 2


def test_the_command_line_race_times_the_shards_the_dense_default_does_not_use(tmp_path):
    settings = dataclasses.replace(bench.BenchSettings.quick(), cli_variants=True)
    sides = bench._cli_sides(settings, tmp_path)
    per_core = shards.default_count(distributed=False, jit_compile=False)
    variants = [label for label in sides if "--batch-shards" in label]
    # The lecture's dense model trains in one shard per core by default.
    assert variants == (["aekeras train dense --batch-shards 1"] if per_core > 1 else [])
    for label in variants:
        command, _ = sides[label]
        assert command(2)[-2:] == ["--batch-shards", "1"]


def test_quick_run_reports_every_figure(tmp_path):
    settings = bench.BenchSettings.quick()
    results = bench.run(settings, progress=lambda message: None)
    assert set(results["training"]) == set(bench.MODELS)
    for race in results["training"].values():
        assert {"aekeras", "PyTorch eager"} <= set(race["sides"])
        assert race["versus_pytorch"]["ratio"] > 0
        for side in race["sides"].values():
            assert len(side["test_loss"]) == len(side["epoch_seconds"]) == settings.epochs
    # Same weights, same batches in the same order: the dense twins end at
    # nearly the same test loss, with aekeras's defaults and with XLA.
    dense = results["training"]["dense"]["sides"]
    toggles = [toggled["label"] for toggled in results["training"]["dense"]["toggles"]]
    per_core = shards.default_count(distributed=False, jit_compile=False)
    assert ("aekeras, 1 batch shard" in toggles) == (per_core > 1)  # the dense model's default shards
    for name in ("vae", "conv"):  # the dense VAE's default shards, and the conv model's
        labels = [toggled["label"] for toggled in results["training"][name]["toggles"]]
        assert ("aekeras, 1 batch shard" in labels) == (per_core > 1), name
    for label in ("aekeras", *toggles):
        assert dense[label]["test_loss"][-1] == pytest.approx(
            dense["PyTorch eager"]["test_loss"][-1], rel=0.01
        )
    # Each race ran with the threads per op `aekeras train` uses for its
    # model, and PyTorch was timed on one thread where aekeras was.
    assert results["intra_op_threads"] == {"dense": 1, "conv": 0, "vae": 1}
    assert results["training"]["conv"]["onednn"] is True  # as `aekeras train conv` runs it
    assert "PyTorch eager, 1 thread" in dense
    assert "PyTorch eager, 1 thread" not in results["training"]["conv"]["sides"]
    shares = bench.peak_shares(results)
    assert set(shares) == set(bench.MODELS)
    # Shares of the peak, as FLOPs per second over it; not bounded by 1 here: the quick
    # run's peak is a small matmul timed for a moment, beside the other tests (1.16 once).
    for name, share in shares.items():
        sides = results["training"][name]["sides"]
        rival = results["training"][name]["versus_pytorch"]["rival"]
        per_second = bench.training_flops(name) / results["matmul_peak_flops"]
        assert share["aekeras"] == pytest.approx(sides["aekeras"]["throughput"]["median"] * per_second)
        assert share["rival"] == pytest.approx(sides[rival]["throughput"]["median"] * per_second)
        assert share["aekeras"] > 0 and share["rival"] > 0
        assert share["target"] == pytest.approx(bench.TARGETS["throughput"] * share["rival"])
    # The peak, measured before and after the dense race, is the higher of the two.
    assert len(results["matmul_peaks_flops"]) == 2
    assert results["matmul_peak_flops"] == max(results["matmul_peaks_flops"])
    cli = results["cli"]["sides"]
    assert set(cli) == {"aekeras train dense", "lecture PyTorch loop"}
    assert all(len(side["epoch_seconds"]) == settings.cli_repeats for side in cli.values())
    # Two different programs: their peaks are their own, not the benchmark's.
    assert cli["aekeras train dense"]["peak_bytes"] != cli["lecture PyTorch loop"]["peak_bytes"]
    pipeline = results["pipeline"]
    assert pipeline["consumed"] > 0 and pipeline["folder_decoding"] > 0  # measured in their process
    labels = {"in memory", "PNG folder, cached", "PNG folder, decoded as read"}
    assert set(pipeline["readings"]) == set(pipeline["python_loop_images_per_second"]) == labels
    for label, readings in pipeline["readings"].items():
        # Every pipeline read in every round; the target's figure is their median.
        assert len(readings) == settings.pipeline_rounds and min(readings) > 0
        assert pipeline["images_per_second"][label] == statistics.median(readings)
    assert set(results["serving"]["saved_model_images_per_second"]) == {1, 256}
    for name, race in results["training"].items():
        # The models of dense layers race their step's matmuls alone, which train nothing.
        alone = race["sides"].get(bench.MATMULS_ALONE)
        assert (alone is None) == (name == "conv") == (race["matmuls_alone"] is None)
        if alone is not None:
            assert alone["kind"] == "matmuls" and alone["seconds_to_target"] is None
            assert alone["test_loss"] == [None] * settings.epochs
            assert len(alone["samples_per_second"]) == settings.epochs - 1
            assert race["matmuls_alone"]["rival"] == race["versus_pytorch"]["rival"]
            assert shares[name]["matmuls"] == pytest.approx(
                alone["throughput"]["median"] * bench.training_flops(name) / results["matmul_peak_flops"]
            )
    lines = bench.summary_lines(results)
    assert [line.split(":")[0] for line in lines[:3]] == [f"train {name}" for name in bench.MODELS]
    assert "aekeras/PyTorch throughput" in lines[0]
    assert sum(f"{bench.MATMULS_ALONE}, no other op" in line for line in lines) == 2
    text = bench.markdown(results, "python benchmarks/bench.py --quick")
    assert "## Targets" in text and "LiteRT int8" in text
    assert f"| {bench.MATMULS_ALONE} |" in text and "| conv | 4.23 |" in text
    # BENCHMARKS.md can be rewritten from the run's saved results alone.
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps({**results, "command": "python benchmarks/bench.py --quick"}, default=float))
    assert bench.markdown(bench.load_results(saved), "python benchmarks/bench.py --quick") == text
    # --out in a folder not yet made: made, as a run's results are lost if they cannot be written.
    out = tmp_path / "new" / "BENCHMARKS.md"
    assert bench.main(["--from-json", str(saved), "--out", str(out)]) == 0
    assert out.read_text() == text
