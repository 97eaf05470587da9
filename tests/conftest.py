"""Shared fixtures: the real engine, the local registry and the images built from the plan.

Nothing here skips: a missing engine or registry fails the tests that need it, with the
command that provides it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from buildtools.errors import MinimalDaskError
from buildtools.images import engine
from buildtools.images.build import BuildOptions, TargetResult, build_plan
from buildtools.images.config import load_images
from buildtools.images.plan import make_plan
from buildtools.images.registry import Registry
from buildtools.settings import Settings


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


def build_images(names: list[str], settings: Settings, log: Path, **plan_args: object) -> list[TargetResult]:
    plan = make_plan(load_images(names), settings.registry, base="mirror", **plan_args)  # type: ignore[arg-type]
    options = BuildOptions(ca_bundle=settings.default_ca_bundle)
    with log.open("a") as sink:
        return build_plan(plan, settings, options, lambda line: sink.write(line + "\n"))


@pytest.fixture(scope="session")
def debian_build(registry: Registry, settings: Settings, build_log: Path) -> TargetResult:
    """The Debian image for all its platforms, from the offline mirror (a cache hit when unchanged)."""
    (result,) = build_images(["debian"], settings, build_log)
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
def dataframe_image(registry: Registry, settings: Settings, build_log: Path) -> str:
    """The dataframe flavour (amd64, arm64), built from the same Dockerfile."""
    (result,) = build_images(["debian-dataframe"], settings, build_log)
    return pinned_ref(result)
