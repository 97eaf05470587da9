"""The project's own code passes its linters (ruff, yamllint); the shell and Dockerfile
linters run in tests/images/test_static_contract.py, the workflow linter in test_workflows.py."""

import subprocess
import sys

from buildtools.settings import REPO_ROOT


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def test_ruff_check() -> None:
    result = run(sys.executable, "-m", "ruff", "check", "buildtools", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run(sys.executable, "-m", "ruff", "format", "--check", "buildtools", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_on_every_yaml_file() -> None:
    """The workflows included: this is their yamllint run."""
    files = run("git", "ls-files", "*.yml", "*.yaml").stdout.split()
    assert files
    result = run(sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_gives_the_two_commands_first_and_ci_runs_the_test_one() -> None:
    readme = (REPO_ROOT / "README.md").read_text().splitlines()
    commands = [line.strip() for line in readme[:10] if line.startswith("    ")]
    assert commands == ["make images", "make test"]
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
