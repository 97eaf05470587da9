"""The one platform table: every platform the project builds for, and what each is called by
Debian, by Kubernetes nodes and by the GitHub runner that builds it; and the one parser of
platform names (an OCI descriptor's os/architecture/variant). A leaf: both flows read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Platform:
    name: str  # the OCI / buildx name: linux/arm/v7
    debian_arch: str  # mmdebstrap's --arch
    node_arch: str  # a Kubernetes node's kubernetes.io/arch label
    runner: str  # the GitHub-hosted runner that builds it
    emulated: bool  # built under QEMU on that runner


# arm64 builds natively; arm/v7 runs under QEMU on amd64, because not every arm64 runner CPU
# can execute 32-bit ARM code.
PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform("linux/amd64", "amd64", "amd64", "ubuntu-24.04", False),
        Platform("linux/arm64", "arm64", "arm64", "ubuntu-24.04-arm", False),
        Platform("linux/arm/v7", "armhf", "arm", "ubuntu-24.04", True),
    )
}
KNOWN_PLATFORMS = tuple(PLATFORMS)


def node_arch(platform: str) -> str:
    """The kubernetes.io/arch label of a platform's nodes (Go's GOARCH: arm for 32-bit ARM)."""
    return PLATFORMS[platform].node_arch


def platform_name(platform: Mapping[str, Any] | None) -> str | None:
    """The name ("linux/arm/v7") of an OCI platform object ({"os", "architecture", "variant"});
    None when it names no real platform (attestation manifests say os "unknown")."""
    if not platform or platform.get("os") in (None, "unknown") or not platform.get("architecture"):
        return None
    variant = f"/{platform['variant']}" if platform.get("variant") else ""
    return f"{platform['os']}/{platform['architecture']}{variant}"
