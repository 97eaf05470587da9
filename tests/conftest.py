"""Shared fixtures: the real engine, the local registry and the images built from the plan.

Nothing here skips: a missing engine or registry fails the tests that need it, with the
command that provides it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildtools.errors import MinimalDaskError
from buildtools.images import engine
from buildtools.images.build import BuildOptions, TargetResult
from buildtools.images.config import load_image, load_images
from buildtools.images.pipeline import run_build
from buildtools.images.plan import make_plan
from buildtools.images.registry import Registry
from buildtools.settings import Settings

# A GPU on this machine: /dev/nvidia0, which the NVIDIA driver creates for the first GPU.
GPU_DEVICE = Path("/dev/nvidia0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the `gpu` tests on a machine without a GPU: reported as deselected, never as
    passed or skipped (docs/IMAGES.md)."""
    if GPU_DEVICE.exists():
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.load()


@pytest.fixture(scope="session")
def registry(settings: Settings) -> Registry:
    """The local registry started by env/bootstrap.sh."""
    try:
        engine.check_engine()
        Registry(settings.registry).ping()
    except MinimalDaskError as e:
        pytest.fail(f"{e} (run: sh env/bootstrap.sh)")
    return Registry(settings.registry)


@pytest.fixture(scope="session")
def build_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("logs") / "build.log"
    yield path


def build_images(
    names: list[str], settings: Settings, log: Path, options: BuildOptions | None = None, **plan_args: object
) -> list[TargetResult]:
    """Build from the offline mirrors (bootstrapped when missing); a cache hit when unchanged."""
    plan = make_plan(load_images(names), settings.registry, base="mirror", **plan_args)  # type: ignore[arg-type]
    options = options or BuildOptions(ca_bundle=settings.default_ca_bundle)
    with log.open("a") as sink:

        def write(line: str) -> None:
            sink.write(line + "\n")

        return run_build(plan, settings, options, write).results


# What the suite builds and tests of the Python x platform matrix, to stay within #8's time on
# a new machine: the default Python on every platform, every other Python on amd64 (no QEMU).
# MINIMALDASK_TEST_MATRIX=full tests all of it (what `make images` and CI build).
DEBIAN = load_image("debian")
FULL_MATRIX = os.environ.get("MINIMALDASK_TEST_MATRIX") == "full"
TESTED_VARIANTS = [
    (python, platform)
    for python in DEBIAN.pythons
    for platform in DEBIAN.variant_platforms(python)
    if FULL_MATRIX or python == DEBIAN.default_python or platform == "linux/amd64"
]


@pytest.fixture(scope="session")
def debian_build(registry: Registry, settings: Settings, build_log: Path) -> TargetResult:
    """The Debian image of the default Python, for all its platforms."""
    (result,) = build_images(["debian"], settings, build_log, pythons=[DEBIAN.default_python])
    return result


def pinned_ref(result: TargetResult) -> str:
    """The image just built, by digest: other builds on the same engine and registry (other
    checkouts) may move its tags while the tests run."""
    ref = result.target.refs[0]
    return f"{ref.rsplit(':', 1)[0]}@{result.digest}" if result.digest else ref


@pytest.fixture(scope="session")
def debian_image(debian_build: TargetResult) -> str:
    return pinned_ref(debian_build)


@pytest.fixture(scope="session")
def debian_images(debian_image: str, registry: Registry, settings: Settings, build_log: Path) -> dict[str, str]:
    """Python minor -> the Debian image built for it, for the platforms TESTED_VARIANTS tests."""
    results = [
        build_images(["debian"], settings, build_log, pythons=[python], platforms=platforms)[0]
        for python in DEBIAN.pythons
        if python != DEBIAN.default_python
        and (platforms := [platform for tested, platform in TESTED_VARIANTS if tested == python])
    ]
    return {DEBIAN.default_python: debian_image} | {r.target.python: pinned_ref(r) for r in results}


@pytest.fixture(scope="session")
def dataframe_image(registry: Registry, settings: Settings, build_log: Path) -> str:
    """The dataframe flavour (amd64, arm64), built from the same Dockerfile."""
    (result,) = build_images(["debian-dataframe"], settings, build_log)
    return pinned_ref(result)


# The one RAPIDS platform the suite builds (see rapids_build).
RAPIDS_PLATFORM = "linux/amd64"


@pytest.fixture(scope="session")
def rapids_build(registry: Registry, settings: Settings, build_log: Path) -> TargetResult:
    """The RAPIDS image for linux/amd64, the platform its container tests run on: importing
    cudf under QEMU takes minutes, and both platforms hold the same wheels' Python code
    (`make images` builds arm64 too). No registry build cache: exporting its 2.6 GB wheels
    stage took minutes; the engine's own cache and the wheels' cache mount remain."""
    options = BuildOptions(ca_bundle=settings.default_ca_bundle, registry_cache=False)
    (result,) = build_images(["rapids"], settings, build_log, options=options, platforms=[RAPIDS_PLATFORM])
    return result


@pytest.fixture(scope="session")
def rapids_image(rapids_build: TargetResult) -> str:
    return pinned_ref(rapids_build)
