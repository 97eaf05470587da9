"""Containers run on this host by the image tests and bench/images.py: free ports on 127.0.0.1 and
the emulation settings per platform."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import pytest
from python_on_whales import docker

from buildtools.settings import REPO_ROOT

# QEMU before 8 emulates arm64's pointer authentication (QARMA5) on its default "max" CPU,
# and Debian trixie's binaries use it in every function: under Debian bookworm's QEMU 7.2,
# importing distributed took 71 s instead of 9 s. The bootstrap registers a newer QEMU;
# this keeps hosts with an older one usable. Ignored on real arm64 hosts.
EMULATION_ENV = {"linux/arm64": {"QEMU_CPU": "cortex-a72"}}


def platform_env(platform: str) -> dict[str, str]:
    return EMULATION_ENV.get(platform, {})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_once(
    image: str,
    platform: str,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    user: str | None = None,
    volumes: list[tuple[str, str, str]] | None = None,
    workdir: str | None = None,
    timeout: float = 600,
    networks: list[str] | None = None,
) -> tuple[int, str]:
    """Run a container to completion (with no network unless `networks` says); return its
    exit code and output.

    A container still running after `timeout` seconds fails the test (with its output so far).
    """
    container = docker.run(
        image,
        command or [],
        platform=platform,
        envs={**platform_env(platform), **(env or {})},
        detach=True,
        networks=networks or ["none"],
        user=user,
        volumes=volumes or [],
        workdir=workdir,
    )
    try:
        deadline = time.monotonic() + timeout
        while docker.container.inspect(container.id).state.running:
            if time.monotonic() > deadline:
                pytest.fail(f"still running after {timeout:.0f} s:\n{docker.logs(container)}")
            time.sleep(0.5)
        return int(docker.wait(container)), docker.logs(container)
    finally:
        container.remove(force=True)


def killed_at(script: str, args: Sequence[str], until: Callable[[str], bool]) -> list[str]:
    """Run `python -c script *args` from the repository, read its output until a line satisfies
    `until` (or the output ends), then SIGKILL it: a caller gone with no cleanup of its own.
    The lines read, the last one the line that satisfied `until`, when one did."""
    process = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if until(line):
                break
        return lines
    finally:
        process.kill()
        process.wait()
