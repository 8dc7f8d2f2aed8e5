"""The benchmark: its PyTorch twins are faithful, and its quick mode runs."""

import sys
from pathlib import Path

import numpy as np
import pytest

# The benchmark lives outside the package, and needs the `bench` extra
# (PyTorch), which `make bench` installs and the default install does not.
torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench  # noqa: E402


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


def test_quick_run_reports_every_figure():
    results = bench.run(bench.BenchSettings.quick(), progress=lambda message: None)
    assert set(results["training"]) == {
        "dense",
        "dense (32 steps per execution)",
        "dense (XLA)",
        "conv",
        "vae",
        "vae (XLA)",
    }
    for race in results["training"].values():
        assert race["throughput_ratio"] > 0 and 0 < race["peak_fraction"] < 1
        assert len(race["keras"]["test_loss"]) == len(race["torch"]["test_loss"]) == 2
    # Same weights, same batches: the dense twins end at nearly the same loss.
    dense = results["training"]["dense"]
    assert dense["keras"]["test_loss"][-1] == pytest.approx(dense["torch"]["test_loss"][-1], rel=0.01)
    assert results["pipeline"]["ratio"] > 0
    assert set(results["inference"]["saved_model_images_per_second"]) == {1, 32, 256}
    text = bench.markdown(results, "python benchmarks/bench.py --quick")
    assert "| dense (XLA) |" in text and "LiteRT int8" in text
    assert len(bench.summary_lines(results)) == 8
