"""Environment errors reach the user as one line and a non-zero exit, without a traceback."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.engine


def buildtools(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildtools", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], start: str) -> None:
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(start), result.stderr
    assert "Traceback" not in result.stderr


def test_engine_not_running() -> None:
    result = buildtools("doctor", DOCKER_HOST="unix:///tmp/minimaldask-no-engine.sock")
    assert_one_line_error(result, "error: contacting the Docker engine (start one with: env/bootstrap.sh engine)")


def test_registry_unreachable(registry: object) -> None:
    result = buildtools("build", "debian", "--base", "mirror", "--quiet", MINIMALDASK_REGISTRY="127.0.0.1:1")
    assert_one_line_error(result, "error: registry 127.0.0.1:1 is unreachable")
    assert "env/bootstrap.sh registry" in result.stderr


def test_platform_without_emulation_names_the_platform_and_the_fix(registry: object) -> None:
    result = buildtools("doctor", "--platform", "linux/s390x")
    assert_one_line_error(result, "error: cannot run linux/s390x containers")
    assert "env/bootstrap.sh binfmt" in result.stderr


def test_doctor_runs_every_platform(registry: object) -> None:
    result = buildtools("doctor")
    assert result.returncode == 0, result.stderr
    assert {line.split(":")[0] for line in result.stdout.splitlines()} == {"linux/amd64", "linux/arm64", "linux/arm/v7"}
    assert "linux/arm/v7: uname -m -> armv7l" in result.stdout
