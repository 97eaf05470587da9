"""The image contract: which image, as which user, on which ports, with which environment.

What images/*/Dockerfile and entrypoint.sh promise (docs/ENTRYPOINT.md), said once for the
Python side and the manifests, and how a ClusterSpec becomes a Dask container's environment.
"""

from __future__ import annotations

import math
import sys
from importlib import metadata
from typing import TYPE_CHECKING

from kubernetes.utils.quantity import parse_quantity

from buildtools.cluster.controller import CLUSTER_ENV, NAMESPACE_ENV
from buildtools.cluster.labels import scheduler_service_name
from buildtools.errors import ConfigError

if TYPE_CHECKING:
    from buildtools.cluster.specs import ClusterSpec

# Where `default_image` looks: CI pushes to ghcr.io/<owner>/<repository>:<tag> (see images/*/image.toml).
DEFAULT_REGISTRY = "ghcr.io/minimaldask"
DEFAULT_REPOSITORY = "minimaldask/debian"

DASK_UID = 1000
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
WORKER_DASHBOARD_PORT = 8788
COMM_PORT_NAME = "tcp-comm"
DASHBOARD_PORT_NAME = "http-dashboard"
HEALTH_PATH = "/health"

# Optional TLS: a Secret holding ca.crt, tls.crt and tls.key (the layout cert-manager writes),
# mounted in every Dask container. The one certificate serves the scheduler and the workers,
# which each check the other's against ca.crt (Dask checks the chain, not the host name).
TLS_MOUNT_PATH = "/etc/dask/tls"
TLS_CA_FILE = "ca.crt"
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"

# The entrypoint's variable for each package manager's extra packages.
PACKAGE_MANAGERS = {"apt": "EXTRA_APT_PACKAGES", "apk": "EXTRA_APK_PACKAGES"}

# Installing system packages needs root, and apt/apk need a few of the capabilities every
# container runtime grants by default (file ownership, and apt's switch to its _apt user).
# Such pods still drop ALL and add back only these: Pod Security "baseline", not "restricted".
ROOT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETGID", "SETUID")

# A worker whose limits ask for NVIDIA GPUs gets GPU_WORKER=true: the entrypoint then starts
# `dask cuda worker` (one worker process per GPU) where the image has dask-cuda.
GPU_RESOURCE = "nvidia.com/gpu"

# Set by the manifests from the spec's fields: `env` must not set them.
MANAGED_ENV = (
    "WORKER",
    "GPU_WORKER",
    "PORT",
    "DASHBOARD_PORT",
    "DASK_SCHEDULER_ADDRESS",
    "DASK_SCHEDULER_SERVICE",
    "ARGUMENTS",
    "EXTRA_PIP_PACKAGES",
    *PACKAGE_MANAGERS.values(),
    CLUSTER_ENV,
    NAMESPACE_ENV,
)
TLS_ENV = (
    "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION",
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY",
)


def default_image(registry: str = DEFAULT_REGISTRY) -> str:
    """The Debian image of the local distributed's version and Python minor (the `{dask}-py{python}`
    tag of images/*/image.toml), so client and cluster agree: a function pickled by one Python
    minor can crash another's scheduler."""
    try:
        version = metadata.version("distributed")
    except metadata.PackageNotFoundError:
        raise ConfigError("distributed is not installed: give the image explicitly") from None
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"{registry.rstrip('/')}/{DEFAULT_REPOSITORY}:{version}-py{python}"


def scheduler_address(spec: ClusterSpec) -> str:
    """The scheduler's in-cluster address, by its Service's DNS name (never an IP)."""
    scheme = "tls" if spec.use_tls else "tcp"
    return f"{scheme}://{scheduler_service_name(spec.name)}.{spec.namespace}.svc:{SCHEDULER_PORT}"


def tls_env() -> dict[str, str]:
    ca, cert, key = (f"{TLS_MOUNT_PATH}/{file}" for file in (TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE))
    return dict(zip(TLS_ENV, ("true", ca, cert, key, cert, key), strict=True))


def dask_env(spec: ClusterSpec, component: str) -> dict[str, str]:
    """The environment of a Dask container (the image's entrypoint contract), `spec.env` last.

    A worker's WORKER_NTHREADS (the CPU limit rounded up) and WORKER_MEMORY_LIMIT (bytes) come
    from its limits when given, and so does GPU_WORKER (an nvidia.com/gpu limit); `spec.env`
    may override the first two.
    """
    if component not in ("scheduler", "worker"):
        raise ConfigError(f"component must be scheduler or worker, got {component!r}")
    env: dict[str, str] = {}
    if component == "scheduler":
        env |= {"WORKER": "false", "PORT": str(SCHEDULER_PORT), "DASHBOARD_PORT": str(DASHBOARD_PORT)}
        # The entrypoint then preloads the controller (buildtools/cluster/controller.py) into the scheduler.
        env |= {CLUSTER_ENV: spec.name, NAMESPACE_ENV: spec.namespace}
        arguments = spec.scheduler_args
    else:
        env |= {
            "WORKER": "true",
            "DASK_SCHEDULER_ADDRESS": scheduler_address(spec),
            "DASHBOARD_PORT": str(WORKER_DASHBOARD_PORT),
        }
        limits = spec.resources.worker.limits
        if GPU_RESOURCE in limits:
            env["GPU_WORKER"] = "true"
        if "cpu" in limits:
            env["WORKER_NTHREADS"] = str(max(1, math.ceil(parse_quantity(limits["cpu"]))))
        if "memory" in limits:
            env["WORKER_MEMORY_LIMIT"] = str(int(parse_quantity(limits["memory"])))
        arguments = spec.worker_args
    if arguments:
        env["ARGUMENTS"] = " ".join(arguments)
    if spec.pip_packages:
        env["EXTRA_PIP_PACKAGES"] = " ".join(spec.pip_packages)
    if spec.system_packages:
        env[PACKAGE_MANAGERS[spec.package_manager]] = " ".join(spec.system_packages)
    if spec.use_tls:
        env |= tls_env()
    return env | {key: spec.env[key] for key in sorted(spec.env)}
