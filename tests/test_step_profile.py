"""benchmarks/step_profile.py: where a training step's time goes, from TensorFlow's own profiler."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "step_profile.py"
sys.path.insert(0, str(SCRIPT.parent))
import step_profile  # noqa: E402

from aekeras import optimizers, registry  # noqa: E402


@pytest.mark.parametrize("name", ["dense", "vae"])
def test_the_step_is_split_into_kinds_of_op_that_add_up_and_runs_the_listed_matmuls(name):
    # A fresh process: the script sets the threads per op before TensorFlow starts.
    result = subprocess.run(
        [sys.executable, str(SCRIPT), name, "--threads", "1"], capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert re.fullmatch(rf"{name}, threads per op 1: \d+\.\d\d ms per step", lines[0])
    kinds = {
        match.group(1): (int(match.group(2)), float(match.group(3)))
        for line in lines[1:]
        if (match := re.fullmatch(r"  (.+): \d+\.\d\d ms of op time per step \((\d+)%\), (\S+) ops", line))
    }
    assert len(kinds) == len(lines) - 1
    # Each model trains its Dense layers' matmuls (forward and backward) and
    # updates each variable with one fused kernel.
    assert {"matmul", "optimizer"} <= set(kinds)
    assert 97 <= sum(share for share, _ in kinds.values()) <= 103
    # The step runs exactly the matmuls the benchmark's matmuls-alone step
    # times: per shard, each layer's forward and kernel gradient, and every
    # input gradient but the first layer's, which the images do not need.
    model = registry.build_model(name, None, seed=0)
    model.compile(optimizer=optimizers.Adam(1e-3))  # the script's batch shards: one per core
    matmuls = step_profile.training_matmuls(model, 256)
    layers = 2 if name == "dense" else 4
    assert len(matmuls) == model.batch_shards * (3 * layers - 1)
    assert kinds["matmul"][1] == len(matmuls)
    assert sum(m.rows for m in matmuls if not (m.transpose_a or m.transpose_b)) == 256 * layers


def test_the_matmuls_of_a_model_with_convolutions_are_not_listed():
    model = registry.build_model("conv", None, seed=0)
    model.compile(optimizer=optimizers.Adam(1e-3))
    assert step_profile.training_matmuls(model, 256) is None


def test_an_unknown_model_or_a_negative_thread_count_is_one_line_and_exit_2():
    for args, expected in (
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["dense", "--threads", "-1"], "expected a whole number of at least 0, got '-1'"),
    ):
        result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
        assert result.returncode == 2 and expected in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
