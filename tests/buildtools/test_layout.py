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


PACKAGE_ROOT = Path(buildtools.__file__).parent
SOURCES = sorted(PACKAGE_ROOT.rglob("*.py"))
# One module, one job: past this, a module is split. The controller is one file by design: it
# is copied alone into every image (images/*/Dockerfile), so it cannot import a sibling.
MAX_LINES = 300
ONE_FILE_BY_DESIGN = {PACKAGE_ROOT / "cluster" / "controller.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports (anywhere in it)."""
    known = {module_name(path): path for path in SOURCES}
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {module for module in found if module in known and module != name}
    return graph


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A chain of imports from `start` back to itself, if there is one."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for imported in graph[module]:
            if imported == start:
                return [*path, start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, [*path, imported]))
    return None


def test_no_module_imports_itself_back_through_others() -> None:
    graph = import_graph()
    assert len(graph) > 30 and graph["buildtools.cluster.deploy"] >= {"buildtools.cluster.handle"}
    cycles = [" -> ".join(cycle) for module in graph if (cycle := cycle_through(graph, module))]
    assert cycles == []


def test_a_cycle_would_be_found() -> None:
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == ["a", "b", "c", "a"]
    assert cycle_through({"a": {"b"}, "b": set()}, "a") is None


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE_ROOT)) for p in SOURCES])
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert path in ONE_FILE_BY_DESIGN or lines <= MAX_LINES, f"{lines} lines"
