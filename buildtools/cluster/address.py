"""Where a cluster's scheduler is from inside the Kubernetes cluster: its Service's DNS name
(never an IP, which changes with every new Service). Said once: the workers' environment,
the handle inside a cluster and the CLI's result table all read it from here."""

from __future__ import annotations

from buildtools.cluster.contract import DASHBOARD_PORT, SCHEDULER_PORT
from buildtools.cluster.labels import scheduler_service_name


def service_host(name: str, namespace: str) -> str:
    return f"{scheduler_service_name(name)}.{namespace}.svc"


def scheduler_address(name: str, namespace: str, tls: bool, port: int = SCHEDULER_PORT) -> str:
    """tls://NAME-scheduler.NS.svc:8786 (tcp:// without TLS)."""
    return f"{'tls' if tls else 'tcp'}://{service_host(name, namespace)}:{port}"


def dashboard_address(name: str, namespace: str) -> str:
    return f"http://{service_host(name, namespace)}:{DASHBOARD_PORT}"
