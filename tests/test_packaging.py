"""The source distribution, as pip and `python -m build` make it from a clean checkout."""

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tracked_files():
    pytest.importorskip("setuptools")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the project's git checkout")
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.splitlines() if (REPO / name).is_file()]


def test_the_sdist_holds_the_package_and_everything_its_tests_need(tmp_path):
    tracked = _tracked_files()
    checkout = tmp_path / "checkout"
    for name in tracked:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, checkout / name)
    build = "from setuptools import build_meta; print(build_meta.build_sdist('dist'))"
    result = subprocess.run(
        [sys.executable, "-c", build], cwd=checkout, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    archive = checkout / "dist" / result.stdout.split()[-1]
    with tarfile.open(archive) as sdist:
        inside = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = [n for n in tracked if n.split("/")[0] in ("aekeras", "tests", "benchmarks") or n == "Makefile"]
    # conftest.py, the helpers and tests/data/ went missing: the unpacked sdist's tests found no fixtures.
    assert [n for n in needed if n not in inside] == []
    assert not [n for n in inside if "__pycache__" in n]
