"""Where a cluster's pods may run: each component's node selector, tolerations and affinity.

From the spec's placement (both components', then each one's own), plus two defaults: a
component that asks for `nvidia.com/gpu` tolerates the NVIDIA taint, and the image's platforms
become a `kubernetes.io/arch` node affinity, so that no pod lands on a node its image has no
build for. Pure, but for reading each images/*/image.toml's platforms (buildtools.settings).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from buildtools.cluster.contract import GPU_RESOURCE
from buildtools.cluster.specs import ClusterSpec
from buildtools.platforms import KNOWN_PLATFORMS, node_arch
from buildtools.settings import images_dir_default, repository_platforms

# The taint the NVIDIA GPU operator and the cloud GPU node pools put on GPU nodes.
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
ARCH_LABEL = "kubernetes.io/arch"
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def image_repository(image: str) -> str:
    """An image reference's repository path, without registry, tag or digest:
    127.0.0.1:5000/minimaldask/debian:2026.8.0 -> minimaldask/debian."""
    name = image.split("@", 1)[0]
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        name = rest
    head, slash, last = name.rpartition("/")
    return f"{head}{slash}{last.split(':', 1)[0]}"


# Read once per folder: every render of a cluster asks.
_repositories = functools.cache(repository_platforms)


def known_platforms(image: str, images_dir: Path | None = None) -> tuple[str, ...] | None:
    """The platforms of the minimaldask image whose repository the reference names (a registry
    may add a prefix: ghcr.io/OWNER/minimaldask/debian), or None for an image not defined here."""
    path = image_repository(image)
    found = {
        repository: platforms
        for repository, platforms in _repositories(images_dir or images_dir_default()).items()
        if path == repository or path.endswith(f"/{repository}")
    }
    return found[max(found, key=len)] if found else None


def image_platforms(spec: ClusterSpec) -> tuple[str, ...]:
    """The platforms the cluster's pods are kept to; () for no constraint."""
    if spec.image_platforms is not None:
        return spec.image_platforms
    return known_platforms(spec.image) or ()


def with_arch(affinity: Mapping[str, Any], platforms: Iterable[str]) -> dict[str, Any]:
    """`affinity` with a required node affinity to the platforms' architectures, ANDed into each
    of its node selector terms (terms are ORed); unchanged when the term already has it."""
    arches = sorted({node_arch(platform) for platform in platforms})
    if not arches:
        return dict(affinity)
    requirement = {"key": ARCH_LABEL, "operator": "In", "values": arches}
    node = dict(affinity.get("nodeAffinity") or {})
    required = dict(node.get(_REQUIRED) or {})
    terms = [dict(term) for term in required.get("nodeSelectorTerms") or [{}]]
    for term in terms:
        expressions = list(term.get("matchExpressions") or [])
        if requirement not in expressions:
            term["matchExpressions"] = [*expressions, requirement]
    return {**affinity, "nodeAffinity": {**node, _REQUIRED: {**required, "nodeSelectorTerms": terms}}}


def _unique(tolerations: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for toleration in tolerations:
        if dict(toleration) not in result:
            result.append(dict(toleration))
    return result


def pod_placement(spec: ClusterSpec, component: str) -> dict[str, Any]:
    """A component's nodeSelector, tolerations and affinity, as a pod spec takes them (empty
    ones left out)."""
    own = getattr(spec.placement, component)
    limits = getattr(spec.resources, component).limits
    gpu = [GPU_TOLERATION] if GPU_RESOURCE in limits else []
    placement = {
        "nodeSelector": {**spec.node_selector, **own.node_selector},
        "tolerations": _unique([*spec.tolerations, *own.tolerations, *gpu]),
        "affinity": with_arch(own.affinity, image_platforms(spec)),
    }
    return {key: value for key, value in placement.items() if value}


def prepull_placement(spec: ClusterSpec) -> dict[str, Any]:
    """prepull_images' placement arguments for the cluster's image: the workers' nodes."""
    placement = pod_placement(spec, "worker")
    return {
        "node_selector": placement.get("nodeSelector", {}),
        "tolerations": placement.get("tolerations", []),
        "affinity": placement.get("affinity", {}),
    }


def common_platforms(images: Sequence[str]) -> tuple[str, ...]:
    """The platforms every one of the images is known to have; () if any is not known here."""
    known = [known_platforms(image) for image in images]
    if not known or None in known:
        return ()
    return tuple(p for p in KNOWN_PLATFORMS if all(p in platforms for platforms in known if platforms is not None))
