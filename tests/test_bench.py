"""The benchmarks are importable code: modules of the bench package, run as python -m bench.NAME
from the checkout, reaching the shared helpers (tests.helpers) without editing sys.path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from buildtools.settings import REPO_ROOT

BENCHES = sorted(path.stem for path in (REPO_ROOT / "bench").glob("*.py") if path.stem != "__init__")


def test_there_are_benches() -> None:
    assert {"deploy", "images", "prepull"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_bench_runs_as_a_module(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m bench.{name}")


@pytest.mark.parametrize("name", BENCHES)
def test_bench_leaves_sys_path_alone(name: str) -> None:
    assert "sys.path" not in (REPO_ROOT / "bench" / f"{name}.py").read_text()
