"""The package installed from its wheel (not editable), used outside the checkout.

The wheel goes into a fresh virtualenv with only the dependencies it declares, at the
locked versions; so reading a file that is not shipped, or importing a package that is
not declared, fails here.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from buildtools.settings import REPO_ROOT, read_env_file

pytestmark = pytest.mark.wheel


def package_modules(path: Path) -> list[str]:
    """The package and its modules; __main__ is run by test_help, not imported."""
    modules = pkgutil.walk_packages([str(path)], "buildtools.")
    names = [module.name for module in modules if module.name != "buildtools.__main__"]
    return ["buildtools", *names]


MODULES = package_modules(REPO_ROOT / "buildtools")


@dataclass(frozen=True)
class Installed:
    venv: Path
    workdir: Path  # outside the checkout

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        return run([self.venv / "bin" / argv[0], *argv[1:]], cwd=self.workdir)


def clean_env() -> dict[str, str]:
    # Nothing from the checkout (no PYTHONPATH into it, no images dir from it) and no
    # machine overrides: the shipped defaults are what is read.
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("MINIMALDASK_")}


def run(argv: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=900, check=False)


def check(argv: list[str | Path], cwd: Path) -> str:
    result = run(argv, cwd)
    assert result.returncode == 0, f"{' '.join(map(str, argv))}:\n{result.stderr}"
    return result.stdout


def locked_versions(lock: Path) -> str:
    """requirements.lock without its hashes and comments: pip takes no hashes in constraints."""
    pins = [line.removesuffix("\\").strip() for line in lock.read_text().splitlines() if line[:1].isalnum()]
    return "\n".join(pins) + "\n"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    dist, venv, workdir = root / "dist", root / "venv", root / "work"
    workdir.mkdir()
    pip = ["-m", "pip", "--disable-pip-version-check"]
    check([sys.executable, *pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, REPO_ROOT], root)
    (wheel,) = dist.glob("*.whl")
    constraints = root / "constraints.txt"
    constraints.write_text(locked_versions(REPO_ROOT / "requirements.lock"))
    check([sys.executable, "-m", "venv", venv], root)
    # The constraints pin versions and install nothing: only what the wheel declares comes in.
    check([venv / "bin" / "python", *pip, "install", "-q", "-c", constraints, wheel], root)
    return Installed(venv, workdir)


def checkout_output(*argv: str) -> str:
    return check([sys.executable, "-m", "buildtools", *argv], REPO_ROOT)


def test_runs_from_the_installed_package(installed: Installed) -> None:
    location = installed.run("python", "-c", "import buildtools; print(buildtools.__file__)").stdout
    assert Path(location.strip()).is_relative_to(installed.venv)


@pytest.mark.parametrize("argv", [("buildtools",), ("python", "-m", "buildtools")], ids=" ".join)
def test_help(installed: Installed, argv: tuple[str, ...]) -> None:
    result = installed.run(*argv, "--help")
    assert result.returncode == 0, result.stderr
    assert "plan" in result.stdout


def test_plan_is_the_checkout_plan(installed: Installed) -> None:
    result = installed.run("buildtools", "plan")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["registry"] == read_env_file(REPO_ROOT / "env" / "defaults.env")["MINIMALDASK_REGISTRY"]
    assert plan == json.loads(checkout_output("plan"))


def test_build_context_is_shipped(installed: Installed) -> None:
    """Building from the wheel needs the engine (not run here); its context must be complete."""
    where = installed.run("python", "-c", "from buildtools.settings import DATA_ROOT; print(DATA_ROOT)")
    data_root = Path(where.stdout.strip())
    assert data_root.is_relative_to(installed.venv), where.stderr
    targets = json.loads(installed.run("buildtools", "plan").stdout)["targets"]
    for path in [".dockerignore", "entrypoint.sh", "images/strip.sh", *(target["dockerfile"] for target in targets)]:
        assert (data_root / path).read_bytes() == (REPO_ROOT / path).read_bytes(), path


def test_render_cluster_is_the_checkout_render(installed: Installed) -> None:
    result = installed.run("buildtools", "render", "cluster", "demo")
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout
    assert result.stdout == checkout_output("render", "cluster", "demo")


def test_changed_says_it_needs_a_checkout(installed: Installed) -> None:
    result = installed.run("buildtools", "changed", "--since", "HEAD~1")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: comparing git commits needs a checkout of the repository (this buildtools is installed)"
    ]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports(installed: Installed, module: str) -> None:
    result = installed.run("python", "-c", f"import {module}")
    assert result.returncode == 0, result.stderr


def test_every_installed_module_is_imported(installed: Installed) -> None:
    where = installed.run("python", "-c", "import buildtools; print(*buildtools.__path__)")
    assert package_modules(Path(where.stdout.strip())) == MODULES, where.stderr


def test_only_the_declared_dependencies_are_installed(installed: Installed) -> None:
    """What makes test_module_imports meaningful: the test extras (pytest...) stay out."""
    assert installed.run("python", "-m", "pip", "check").returncode == 0
    listing = installed.run("python", "-m", "pip", "list", "--format=json").stdout
    assert "pytest" not in {package["name"] for package in json.loads(listing)}
