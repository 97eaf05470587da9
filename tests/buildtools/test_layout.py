"""The package's two flows stay apart: importing one never loads the other's heavy dependency
(a fresh interpreter per check, so nothing imported by another test hides an import)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import buildtools.cluster
import buildtools.images


def modules(package: object) -> list[str]:
    return [info.name for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}.")]  # type: ignore[attr-defined]


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize("module", [*modules(buildtools.images), "buildtools", "buildtools.cli"])
def test_the_image_flow_and_the_cli_never_load_the_kubernetes_client(module: str) -> None:
    assert "kubernetes" not in loaded_after_import(module)


@pytest.mark.parametrize("module", modules(buildtools.cluster))
def test_the_cluster_flow_never_loads_the_docker_wrapper(module: str) -> None:
    assert "python_on_whales" not in loaded_after_import(module)


def test_the_public_api_is_there_on_first_use() -> None:
    from buildtools import DaskCluster, delete_dask_cluster, prepull_images, start_dask_cluster

    assert all(callable(f) for f in (DaskCluster, delete_dask_cluster, prepull_images, start_dask_cluster))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        buildtools.nothing  # noqa: B018
