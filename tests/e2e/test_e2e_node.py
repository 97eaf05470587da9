"""End to end on a REAL Kubernetes node: env/k8s-node.sh runs a control plane, a kubelet, kube-proxy,
CoreDNS and a containerd of its own; pods really run, pull from the local registry and talk over a
private bridge. The Dask client runs on the host and reaches the scheduler through the port-forward
that DaskCluster opens over the API server.

The node is started once per session and stopped at the end (MINIMALDASK_NODE_KEEP=1 keeps it up).
It is never skipped: when it cannot start, every test here fails with the tail of its logs.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from buildtools.cluster import labels
from buildtools.cluster.deploy import DaskCluster, delete_dask_cluster, start_dask_cluster
from buildtools.cluster.kube import Kube
from buildtools.errors import ImagePullError
from buildtools.settings import Settings
from tests.helpers.node import Node, NodeError

pytestmark = pytest.mark.node

NODE_NAME = "minimaldask-e2e"
NAMESPACE = "e2e"
START_TIMEOUT = 600.0


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    try:
        found = Node.up(NODE_NAME)
    except NodeError as e:
        pytest.fail(str(e), pytrace=False)
    print(f"\nnode {NODE_NAME} up in {found.start_seconds:.1f} s")
    try:
        yield found
    finally:
        if os.environ.get("MINIMALDASK_NODE_KEEP") != "1":
            found.down()


@pytest.fixture(scope="session")
def kube(node: Node) -> Kube:
    kube = Kube.connect(str(node.kubeconfig))
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    return kube


@pytest.fixture(scope="session")
def debian_ref(debian_image: str) -> str:
    """The Debian image from the plan, in the local registry (built by the suite when missing)."""
    return debian_image


@pytest.fixture(scope="module")
def dask_cluster(node: Node, kube: Kube, debian_ref: str) -> Iterator[DaskCluster]:
    try:
        cluster = start_dask_cluster(
            "e2e",
            namespace=NAMESPACE,
            image=debian_ref,
            n_workers=2,
            kubeconfig=str(node.kubeconfig),
            timeout=START_TIMEOUT,
        )
    except Exception as e:
        pytest.fail(f"start_dask_cluster failed: {e}\n{node.log_tail()}", pytrace=False)
    with cluster:  # closes the port-forwards and deletes the cluster
        yield cluster


def test_client_on_the_host_computes_through_the_port_forward(dask_cluster: DaskCluster) -> None:
    import dask.array as da

    address = dask_cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    with dask_cluster.client(timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
        x = da.random.random((10000, 10000), chunks=(1000, 1000))
        y = (x + x.T)[::2, 5000:].mean(axis=1)
        result = client.compute(y).result(timeout=300)
        workers = client.scheduler_info()["workers"]
    assert result.shape == (5000,)
    # Each value is the mean of 5000 sums of two U(0, 1): 1 give or take a few hundredths.
    assert abs(result - 1.0).max() < 0.05
    assert len(workers) == 2
    # The workers are real pods on the pod network.
    assert all(w.startswith("tcp://10.244.0.") for w in workers)


def test_scale_adds_a_worker_that_joins(dask_cluster: DaskCluster) -> None:
    dask_cluster.scale(3, timeout=START_TIMEOUT)
    with dask_cluster.client(timeout=60) as client:
        client.wait_for_workers(3, timeout=120)
        assert len(client.scheduler_info()["workers"]) == 3
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6


def wait_gone(what: str, check: object, timeout: float = 180.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    left = check()
    while left:
        if time.monotonic() > deadline:
            pytest.fail(f"{what} still there after {timeout:.0f} s: {left}")
        time.sleep(2)
        left = check()


def test_delete_leaves_no_pod_container_or_object(node: Node, kube: Kube, debian_ref: str) -> None:
    name = "e2e-delete"
    start_dask_cluster(
        name, namespace=NAMESPACE, image=debian_ref, n_workers=1, kubeconfig=str(node.kubeconfig), timeout=300
    )
    selector = labels.label_selector(name)
    assert kube.list("v1", "Pod", NAMESPACE, selector)
    pod_names = {p["metadata"]["name"] for p in kube.list("v1", "Pod", NAMESPACE, selector)}

    deleted = delete_dask_cluster(name, NAMESPACE, kubeconfig=str(node.kubeconfig))

    assert deleted == 3  # scheduler and worker Deployments, scheduler Service
    for api_version, kind in (("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"), ("v1", "Service"), ("v1", "Pod")):
        assert kube.list(api_version, kind, NAMESPACE, selector) == [], kind

    # The kubelet removes the containers of deleted pods, and their sandboxes in its next GC pass.
    def info_unless_gone(container: str) -> str:
        try:
            return node.ctr("containers", "info", container)
        except subprocess.CalledProcessError as e:
            if "not found" in e.stderr:  # removed between the list and this look: gone, as wanted
                return ""
            raise

    def containers_left() -> list[str]:
        ids = node.containers_of(NAMESPACE)
        return [i for i in ids if any(p in info_unless_gone(i) for p in pod_names)]

    wait_gone(f"containers of cluster {name}", containers_left)


def test_missing_image_fails_fast_with_image_pull_error(node: Node, kube: Kube) -> None:
    registry = Settings.load().registry
    image = f"{registry}/minimaldask/does-not-exist:0"
    start = time.monotonic()
    with pytest.raises(ImagePullError) as failure:
        start_dask_cluster(
            "e2e-noimage", namespace=NAMESPACE, image=image, n_workers=1, kubeconfig=str(node.kubeconfig), timeout=300
        )
    elapsed = time.monotonic() - start
    message = str(failure.value)
    assert elapsed < 120, f"took {elapsed:.0f} s to fail"
    assert failure.value.reason in {"ErrImagePull", "ImagePullBackOff"}, message
    # The runtime's own pull error (containerd: "... not found"), naming the image.
    assert "does-not-exist" in message and "not found" in message, message
    # The failed start removed what it had created.
    assert kube.list("v1", "Pod", NAMESPACE, labels.label_selector("e2e-noimage")) == []
