"""The package's two flows stay apart: importing one never loads the other's heavy dependency
(a fresh interpreter per check, so nothing imported by another test hides an import), and the
cluster flow's source imports nothing of the image flow or the CLI (they share only errors,
settings and platforms)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import buildtools
import buildtools.cli
import buildtools.cluster
import buildtools.images


def modules(package: object) -> list[str]:
    return [info.name for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}.")]  # type: ignore[attr-defined]


def loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def imported_by(path: Path) -> set[str]:
    """Every module a source file imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", [*modules(buildtools.images), *modules(buildtools.cli), "buildtools"])
def test_the_image_flow_and_the_cli_never_load_the_kubernetes_client(module: str) -> None:
    assert "kubernetes" not in loaded_after_import(module)


@pytest.mark.parametrize("module", modules(buildtools.cluster))
def test_the_cluster_flow_never_loads_the_docker_wrapper(module: str) -> None:
    assert "python_on_whales" not in loaded_after_import(module)


@pytest.mark.parametrize("path", sorted(Path(buildtools.cluster.__path__[0]).glob("*.py")), ids=lambda p: p.name)
def test_the_cluster_flow_imports_nothing_of_the_image_flow_or_the_cli(path: Path) -> None:
    crossing = {name for name in imported_by(path) if name.startswith(("buildtools.images", "buildtools.cli"))}
    assert not crossing, f"{path.name} imports {', '.join(sorted(crossing))}"


def test_the_public_api_is_there_on_first_use() -> None:
    """Each name resolves to the object of that name (import_module and getattr, not a stub)."""
    assert [getattr(buildtools, name).__name__ for name in buildtools.__all__] == buildtools.__all__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        buildtools.nothing  # noqa: B018
