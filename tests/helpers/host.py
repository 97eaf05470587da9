"""Containers run on this host by the image tests and bench/images.py: free ports on 127.0.0.1 and
the emulation settings per platform."""

from __future__ import annotations

import socket

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
