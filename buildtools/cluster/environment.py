"""How a ClusterSpec becomes the environment of a Dask container: the image's entrypoint
contract (contract.py, docs/ENTRYPOINT.md) filled in from the spec's fields."""

from __future__ import annotations

import math

from kubernetes.utils.quantity import parse_quantity

from buildtools.cluster.address import scheduler_address
from buildtools.cluster.contract import (
    CLUSTER_ENV,
    DASHBOARD_PORT,
    GPU_RESOURCE,
    NAMESPACE_ENV,
    PACKAGE_MANAGERS,
    SCHEDULER_PORT,
    TLS_CA_FILE,
    TLS_CERT_FILE,
    TLS_CLIENT_ENV,
    TLS_ENV,
    TLS_KEY_FILE,
    TLS_MOUNT_PATH,
    WORKER_DASHBOARD_PORT,
)
from buildtools.cluster.specs import ClusterSpec
from buildtools.errors import ConfigError


def tls_env(component: str) -> dict[str, str]:
    """Dask's TLS settings, from the mounted Secret: a scheduler's and a worker's certificate
    pairs, or a client's (the runner's); the one certificate serves each role."""
    ca, cert, key = (f"{TLS_MOUNT_PATH}/{file}" for file in (TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE))
    if component == "runner":
        return dict(zip((*TLS_ENV[:2], *TLS_CLIENT_ENV), ("true", ca, cert, key), strict=True))
    return dict(zip(TLS_ENV, ("true", ca, cert, key, cert, key), strict=True))


def dask_env(spec: ClusterSpec, component: str) -> dict[str, str]:
    """The environment of a Dask container (the image's entrypoint contract), `spec.env` last.

    A worker's WORKER_NTHREADS (the CPU limit rounded up) and WORKER_MEMORY_LIMIT (bytes) come
    from its limits when given, and so does GPU_WORKER (an nvidia.com/gpu limit); `spec.env`
    may override the first two. A batch job's runner is a client: the scheduler's address (the
    entrypoint waits for it) and, with TLS, the client's certificate.
    """
    if component not in ("scheduler", "worker", "runner"):
        raise ConfigError(f"component must be scheduler, worker or runner, got {component!r}")
    env: dict[str, str] = {}
    arguments: tuple[str, ...] = ()
    if component == "runner":
        env["DASK_SCHEDULER_ADDRESS"] = scheduler_address(spec.name, spec.namespace, spec.tls)
    elif component == "scheduler":
        env |= {"WORKER": "false", "PORT": str(SCHEDULER_PORT), "DASHBOARD_PORT": str(DASHBOARD_PORT)}
        # The entrypoint then preloads the controller (buildtools/cluster/controller.py) into the scheduler.
        env |= {CLUSTER_ENV: spec.name, NAMESPACE_ENV: spec.namespace}
        arguments = spec.scheduler_args
    else:
        env |= {
            "WORKER": "true",
            "DASK_SCHEDULER_ADDRESS": scheduler_address(spec.name, spec.namespace, spec.tls),
            "DASHBOARD_PORT": str(WORKER_DASHBOARD_PORT),
        }
        limits = spec.resources.worker.limits
        if GPU_RESOURCE in limits:
            env["GPU_WORKER"] = "true"
        if "cpu" in limits:
            env["WORKER_NTHREADS"] = str(max(1, math.ceil(parse_quantity(limits["cpu"]))))
        if "memory" in limits:
            env["WORKER_MEMORY_LIMIT"] = str(int(parse_quantity(limits["memory"])))
        resources = ",".join(f"{name}={amount:g}" for name, amount in sorted(spec.dask_resources.items()))
        arguments = (*spec.worker_args, *(("--resources", resources) if resources else ()))
    if arguments:
        env["ARGUMENTS"] = " ".join(arguments)
    if spec.pip_packages:
        env["EXTRA_PIP_PACKAGES"] = " ".join(spec.pip_packages)
    if spec.system_packages:
        env[PACKAGE_MANAGERS[spec.package_manager]] = " ".join(spec.system_packages)
    if spec.tls:
        env |= tls_env(component)
    return env | {key: spec.env[key] for key in sorted(spec.env)}
