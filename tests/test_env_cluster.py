"""env/k8s-cluster.sh on this machine: a reused cluster must have all its components, not
just an API that answers (a CI run once reused one whose controller-manager had exited)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.kwok_cluster import CLUSTER_SCRIPT, start_cluster, stop_cluster

pytestmark = pytest.mark.k8s

NAME = "minimaldask-restart"


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    kubeconfig = start_cluster(NAME)
    try:
        yield kubeconfig.parent
    finally:
        stop_cluster(NAME)


def component_args(cluster_dir: Path, component: str) -> list[str]:
    pid = (cluster_dir / "pids" / f"{component}.pid").read_text().strip()
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def test_up_restarts_a_component_that_exited_and_none_elects_a_leader(cluster_dir: Path) -> None:
    for component in ("kube-controller-manager", "kube-scheduler"):
        assert "--leader-elect=false" in component_args(cluster_dir, component)
    pid = int((cluster_dir / "pids" / "kube-controller-manager.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    up = subprocess.run(["sh", str(CLUSTER_SCRIPT), "up", NAME], capture_output=True, text=True, check=True)
    assert "lost a component: restarting it" in up.stderr
    restarted = component_args(cluster_dir, "kube-controller-manager")
    assert restarted[0].startswith(str(cluster_dir))
    assert int((cluster_dir / "pids" / "kube-controller-manager.pid").read_text()) != pid
