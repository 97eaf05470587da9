"""The benchmarks are importable code: modules of the bench package, run as python -m bench.NAME
from the checkout, reaching the shared helpers (tests.helpers) without editing sys.path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.floor import collect, directory_of, platform_manifest, sources_of
from buildtools.images.sizes import LayerSizeCache, measure_manifest
from buildtools.settings import REPO_ROOT

BENCHES = sorted(path.stem for path in (REPO_ROOT / "bench").glob("*.py") if path.stem != "__init__")


def test_there_are_benches() -> None:
    assert {"deploy", "images", "prepull", "tls"} <= set(BENCHES)


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


TINY_TLS_RUN = ("--size-mb", "10", "--chunks", "2", "--connects", "2", "--round-trips", "3", "--transfers", "1")


def test_the_tls_bench_gives_both_modes_and_their_ratios() -> None:
    """bench.tls on a tiny scale (two local clusters, 10 MB moved once): the shape of its output,
    not its timings."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.tls", *TINY_TLS_RUN],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    *table, last = result.stdout.splitlines()
    assert any(line.split() == ["figure", "|", "tcp", "|", "tls", "|", "tls/tcp"] for line in table), result.stdout
    report = json.loads(last)
    assert (report["size_mb"], report["chunks"]) == (10, 2)
    assert set(report["results"]) == {"connect_ms", "round_trip_ms", "transfer_s", "transfer_mb_s"}
    for name, figure in report["results"].items():
        assert figure["tcp"] > 0 and figure["tls"] > 0, name
        assert figure["ratio"] == pytest.approx(figure["tls"] / figure["tcp"], rel=0.1), name  # of rounded medians
    runs = {
        name: {mode: len(values) for mode, values in figure["runs"].items()}
        for name, figure in report["results"].items()
    }
    assert runs["connect_ms"] == {"tcp": 2, "tls": 2}
    assert runs["round_trip_ms"] == {"tcp": 3, "tls": 3}
    assert runs["transfer_s"] == runs["transfer_mb_s"] == {"tcp": 1, "tls": 1}


def test_floor_charges_bytes_to_distributions_and_finds_the_sources_of_byte_code() -> None:
    site = "/opt/dask/lib/python3.13/site-packages"
    assert directory_of(f"{site}/bokeh/server/static/js/bokeh.min.js") == f"{site}/bokeh"
    assert directory_of("/usr/lib/x86_64-linux-gnu/gconv/IBM1047.so") == "/usr/lib/x86_64-linux-gnu/gconv"
    assert directory_of("/usr/bin/perl") == "/usr/bin"
    opened = {"/a/__pycache__/b.cpython-313.pyc", "/a/__pycache__/c.cpython-313.opt-1.pyc", "/a/d.so", "/a/e.py"}
    assert sources_of(opened) == {"/a/b.py", "/a/c.py"}


@pytest.mark.images
def test_floor_collects_what_scheduler_worker_and_client_open(debian_image: str) -> None:
    """bench.floor's collection on the real image (amd64; fanotify, so as root): the files a
    scheduler, a worker and a client open are there, the ones they write are not, and the floor
    is a part of the image. Structure and sanity, not sizes."""
    platform = "linux/amd64"
    floor = collect(debian_image, platform, timeout=600)
    opened = set(floor.files)
    assert opened <= floor.names
    # The executables and loader of every process: tini, the entrypoint's shell, Python.
    assert {"/usr/bin/tini", "/usr/bin/dash", "/usr/local/bin/entrypoint.sh"} <= opened
    assert any(path.startswith("/usr/bin/python3.") for path in opened), sorted(opened)
    assert any(path.endswith("/libc.so.6") for path in opened)
    assert "/usr/local/lib/minimaldask-client-guard.py" in opened  # the scheduler's preload
    distributed = [path for path in opened if "/site-packages/distributed/__pycache__/__init__." in path]
    assert len(distributed) == 1, distributed
    assert any(path.endswith("/site-packages/distributed/__init__.py") for path in sources_of(opened))
    assert any(path.endswith("/bokeh/server/static/js/bokeh.min.js") for path in opened)  # served by /status
    assert not [path for path in opened if path.startswith(("/tmp/", "/home/"))]  # written at run time
    source, digest, _ = platform_manifest(debian_image, platform)
    image = measure_manifest(source, platform, digest, LayerSizeCache(None))
    assert 10e6 < sum(floor.files.values()) < image.uncompressed
