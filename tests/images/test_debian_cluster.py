"""A scheduler and two workers from the Debian image compute the seed's example.

Containers use the host network with every server bound to 127.0.0.1.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from python_on_whales import Container, docker

from tests.conftest import DEBIAN
from tests.helpers.host import free_port, platform_env

pytestmark = pytest.mark.images

# At least amd64 and one ARM platform (under QEMU).
CLUSTER_PLATFORMS = ["linux/amd64", "linux/arm64"]


@dataclass
class LocalCluster:
    scheduler: Container
    workers: list[Container]
    address: str
    dashboard: str


def start(image: str, platform: str, env: dict[str, str]) -> Container:
    return docker.run(
        image,
        platform=platform,
        envs={"HOST": "127.0.0.1", **platform_env(platform), **env},
        detach=True,
        networks=["host"],
    )


def wait_for_workers(address: str, count: int, timeout: float) -> None:
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(count, timeout=timeout)


def http_get(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module", params=CLUSTER_PLATFORMS)
def cluster(request: pytest.FixtureRequest, debian_image: str) -> Iterator[LocalCluster]:
    platform = str(request.param)
    port, dashboard = free_port(), free_port()
    # The clients here are this host's Python (3.11), the image's another: let them in, their
    # tasks are library functions, pickled by reference (test_a_client_of_another_minor_... is the default).
    allow = {"PYTHON_MISMATCH": "allow"}
    scheduler = start(debian_image, platform, {"PORT": str(port), "DASHBOARD_PORT": str(dashboard), **allow})
    address = f"tcp://127.0.0.1:{port}"
    workers = [
        start(debian_image, platform, {"WORKER": "true", "DASK_SCHEDULER_ADDRESS": address, "WORKER_NTHREADS": "1"})
        for _ in range(2)
    ]
    try:
        wait_for_workers(address, 2, timeout=180)
        yield LocalCluster(scheduler, workers, address, f"http://127.0.0.1:{dashboard}")
    finally:
        for container in [*workers, scheduler]:
            container.remove(force=True)


def test_seed_example_computes(cluster: LocalCluster) -> None:
    import dask.array as da
    import numpy as np
    from distributed import Client

    with Client(cluster.address, timeout=60) as client:
        x = da.random.random((10000, 10000), chunks=(1000, 1000))
        result = client.compute((x + x.T)[::2, 5000:].mean(axis=1)).result(timeout=600)  # QEMU is slow
        assert result.shape == (5000,)
        # The mean of 5000 sums of two uniform [0, 1) numbers is close to 1.
        assert np.all(np.abs(result - 1.0) < 0.05)
        assert len(client.scheduler_info()["workers"]) == 2


def test_dashboard_health_and_status_page(cluster: LocalCluster) -> None:
    assert http_get(f"{cluster.dashboard}/health", timeout=60) == "ok"
    assert "Bokeh" in http_get(f"{cluster.dashboard}/status", timeout=60)


def test_docker_stop_closes_the_worker_gracefully(cluster: LocalCluster, debian_image: str) -> None:
    worker = start(
        debian_image,
        "linux/amd64",
        {"WORKER": "true", "DASK_SCHEDULER_ADDRESS": cluster.address, "WORKER_NTHREADS": "1"},
    )
    try:
        wait_for_workers(cluster.address, 3, timeout=120)
        # SIGTERM via tini; a worker that ignored it would be killed after 30 s with exit code 137.
        docker.stop(worker, time=30)
        state = docker.container.inspect(worker.id).state
        logs = docker.logs(worker)
        assert state.exit_code == 0, logs
        # The nanny got SIGTERM and closed its worker; the worker was not killed.
        assert "Stopping worker at" in logs and "Reason: signal-15" in logs, logs
        assert "Worker closed" in logs and "killed by signal" not in logs, logs
    finally:
        worker.remove(force=True)


# Runs in the scheduler's container (the image's Python): how many workers, and a sum on them.
IN_IMAGE_CLIENT = """
import sys
from distributed import Client
with Client(sys.argv[1], timeout=120) as client:
    client.wait_for_workers(1, timeout=120)
    print(len(client.scheduler_info()["workers"]), client.submit(sum, [20, 22]).result(timeout=120))
"""


def test_a_client_of_another_python_minor_is_refused_at_connect_and_the_workers_stay(debian_image: str) -> None:
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = start(debian_image, "linux/amd64", {"PORT": str(port), "DASHBOARD_PORT": str(free_port())})
    worker = start(debian_image, "linux/amd64", {"WORKER": "true", "DASK_SCHEDULER_ADDRESS": address})
    try:
        in_image = ["python", "-c", IN_IMAGE_CLIENT, address]
        assert docker.execute(scheduler, in_image).split() == ["1", "42"]
        mine, image = f"{sys.version_info.major}.{sys.version_info.minor}", DEBIAN.default_python
        assert mine != image, "this host runs the image's Python: nothing to mismatch"
        with pytest.raises(ImportError, match=rf"runs Python {image}, this client Python {mine}: .*-py{mine}\)"):
            Client(address, timeout=60)
        assert docker.execute(scheduler, in_image).split() == ["1", "42"]
        assert "refused client" in docker.logs(scheduler)
    finally:
        for container in (worker, scheduler):
            container.remove(force=True)
