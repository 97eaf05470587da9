"""The image contract: which image, as which user, on which ports, with which environment.

What images/*/Dockerfile and entrypoint.sh promise (docs/ENTRYPOINT.md), said once for the
Python side and the manifests (cluster/environment.py turns a spec into that environment).
"""

from __future__ import annotations

import sys
from importlib import metadata

from buildtools.cluster.controller import CLUSTER_ENV, NAMESPACE_ENV
from buildtools.errors import ConfigError

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
# A client's (a batch job's runner): with REQUIRE_ENCRYPTION and CA_FILE above.
TLS_CLIENT_ENV = ("DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT", "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY")


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
