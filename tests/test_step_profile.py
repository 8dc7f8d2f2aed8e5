"""benchmarks/step_profile.py: where a training step's time goes, from TensorFlow's own profiler."""

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "step_profile.py"


def test_the_dense_step_is_split_into_kinds_of_op_that_add_up():
    # A fresh process: the script sets the threads per op before TensorFlow starts.
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "dense", "--threads", "1"], capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"dense, threads per op 1: \d+\.\d\d ms per step", lines[0])
    shares = {
        match.group(1): int(match.group(2))
        for line in lines[1:]
        if (match := re.fullmatch(r"  (.+): \d+\.\d\d ms of op time per step \((\d+)%\)", line))
    }
    assert len(shares) == len(lines) - 1
    # The lecture's model trains its two Dense layers' matmuls (forward and
    # backward) and updates four variables with one fused kernel each.
    assert {"matmul", "optimizer"} <= set(shares)
    assert 97 <= sum(shares.values()) <= 103


def test_an_unknown_model_or_a_negative_thread_count_is_one_line_and_exit_2():
    for args, expected in (
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["dense", "--threads", "-1"], "expected a whole number of at least 0, got '-1'"),
    ):
        result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
        assert result.returncode == 2 and expected in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
