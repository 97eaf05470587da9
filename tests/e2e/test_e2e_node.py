"""End to end on a REAL Kubernetes node: env/k8s-node.sh runs a control plane, a kubelet, kube-proxy,
CoreDNS and a containerd of its own; pods really run, pull from the local registry and talk over a
private bridge. The Dask client runs on the host and reaches the scheduler through the port-forward
that DaskCluster opens over the API server.

The host's client is Python 3.11 with numpy 2, the default Debian image Python 3.13 (numpy 2.2).
The image of the client's minor (bookworm's numpy 1.24) cannot load a numpy 2 client's graphs
("No module named 'numpy._core'", seen here), so the clusters here run the default image with
both Python-minor checks lifted (ALLOW_OTHER_PYTHON: check_python=False, PYTHON_MISMATCH=allow),
and their tasks are library functions, pickled by reference.
test_a_client_of_another_python_minor_... keeps both checks on and shows that they refuse.

The node is started once per session and stopped at the end (MINIMALDASK_NODE_KEEP=1 keeps it up).
It is never skipped: when it cannot start, every test here fails with the tail of its logs.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from distributed import Client, wait

from buildtools.cluster import labels
from buildtools.cluster.client_guard import own_minor
from buildtools.cluster.credentials import generate
from buildtools.cluster.deploy import DaskCluster, delete_dask_cluster, start_dask_cluster
from buildtools.cluster.jobs import JobStatus, job_status, run_job
from buildtools.cluster.kinds import DEPLOYMENT, POD, REPLICASET, SERVICE, SERVICE_ACCOUNT
from buildtools.cluster.kube import Kube
from buildtools.cluster.lifecycle import CLUSTER_KINDS
from buildtools.errors import ConfigError, ImagePullError, JobFailed, VersionMismatchError
from buildtools.settings import REPO_ROOT, Settings
from tests.conftest import DEBIAN
from tests.helpers.host import killed_at
from tests.helpers.node import Node, NodeError
from tests.helpers.tls import read_without_a_client_certificate

pytestmark = pytest.mark.node

NODE_NAME = "minimaldask-e2e"
NAMESPACE = "e2e"
START_TIMEOUT = 600.0
OFFSET = 10


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


# The handle's check and the scheduler's guard, lifted (see the module's docstring).
ALLOW_OTHER_PYTHON = {"check_python": False, "env": {"PYTHON_MISMATCH": "allow"}}


# Small enough for 20 workers on the one node (2 cores), with room for the scheduler.
SMALL_WORKER = {"worker": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}}


def start(node: Node, name: str, image: str, **fields: Any) -> DaskCluster:
    try:
        return start_dask_cluster(
            name,
            namespace=NAMESPACE,
            image=image,
            kubeconfig=str(node.kubeconfig),
            timeout=START_TIMEOUT,
            **(ALLOW_OTHER_PYTHON | fields),
        )
    except Exception as e:
        pytest.fail(f"start_dask_cluster failed: {e}\n{node.log_tail()}", pytrace=False)


@pytest.fixture(scope="module")
def dask_cluster(node: Node, kube: Kube, debian_ref: str) -> Iterator[DaskCluster]:
    with start(node, "e2e", debian_ref, n_workers=2, resources=SMALL_WORKER) as cluster:  # deletes it at the end
        yield cluster


def test_client_on_the_host_computes_through_the_port_forward_over_mutual_tls_by_default(
    dask_cluster: DaskCluster,
) -> None:
    import dask.array as da

    address = dask_cluster.scheduler_address
    assert address.startswith("tls://127.0.0.1:")  # the cluster's own certificate, from its Secret
    assert dask_cluster.dashboard_link.startswith("http://127.0.0.1:")
    health = dask_cluster.dashboard_link.replace("/status", "/health")
    with urllib.request.urlopen(health, timeout=30) as answer:  # noqa: S310 - loopback http
        assert answer.read() == b"ok"  # the dashboard, through its own forward
    assert repr(dask_cluster).startswith(f"DaskCluster({NAMESPACE}/e2e, 'tls://127.0.0.1:")
    with Client(dask_cluster, timeout=60) as client:
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
    assert all(w.startswith("tls://10.244.0.") for w in workers)


def test_the_default_cluster_answers_nothing_without_its_certificate_or_over_tcp(dask_cluster: DaskCluster) -> None:
    host, port = dask_cluster.scheduler_address.removeprefix("tls://").rsplit(":", 1)
    ca = dask_cluster.security.tls_ca_file  # the cluster's CA (in memory): trusted, but no client certificate
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        read_without_a_client_certificate(host, int(port), ca)
    with pytest.raises((OSError, TimeoutError)):
        Client(f"tcp://{host}:{port}", timeout=15)
    with pytest.raises((OSError, TimeoutError)):  # another cluster's certificate: not this cluster's CA
        Client(dask_cluster.scheduler_address, security=generate("other", NAMESPACE).security(), timeout=15)
    with Client(dask_cluster, timeout=60) as client:  # and the cluster is none the worse for it
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3
        assert len(client.scheduler_info()["workers"]) == 2


def test_scale_adds_a_worker_that_joins(dask_cluster: DaskCluster) -> None:
    dask_cluster.scale(3)
    with Client(dask_cluster, timeout=60) as client:
        client.wait_for_workers(3, timeout=START_TIMEOUT)
        assert len(client.scheduler_info()["workers"]) == 3
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6


def worker_pods(kube: Kube, name: str) -> set[str]:
    pods = kube.list(POD, NAMESPACE, labels.label_selector(name, "worker"))
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def pods_of(client: Client, kube: Kube, name: str, workers: set[str]) -> set[str]:
    """The pods of these workers (by the worker's host, the pod's IP)."""
    hosts = {w["host"] for a, w in client.scheduler_info()["workers"].items() if a in workers}
    pods = kube.list(POD, NAMESPACE, labels.label_selector(name, "worker"))
    return {p["metadata"]["name"] for p in pods if p["status"].get("podIP") in hosts}


def test_scaling_down_retires_the_workers_the_scheduler_chooses_and_keeps_every_key(
    dask_cluster: DaskCluster, kube: Kube
) -> None:
    import dask.array as da

    dask_cluster.scale(3)
    with Client(dask_cluster, timeout=60) as client:
        client.wait_for_workers(3, timeout=START_TIMEOUT)
        x = da.random.random((3000, 3000), chunks=(500, 500)).persist()
        wait(x, timeout=120)
        total = float(x.sum().compute())
        keys = set(client.who_has(x))
        before = worker_pods(kube, "e2e")
        held = {worker: set(held) for worker, held in client.has_what().items()}
        assert len(keys) == 36 and len(held) == 3

        dask_cluster.scale(1)
        wait_for(lambda: len(worker_pods(kube, "e2e")) == 1, "1 worker pod", 120)
        left = worker_pods(kube, "e2e")
        survivor = set(client.scheduler_info()["workers"])
        # Exactly the pods of the retired workers went: the one left is the survivor's.
        assert len(survivor) == 1 and left == pods_of(client, kube, "e2e", survivor) and left < before
        retired = set(held) - survivor
        assert len(retired) == 2 and any(held[worker] for worker in retired)  # they held data, moved
        who_has = client.who_has(x)
        assert set(who_has) == keys and all(holders for holders in who_has.values())
        assert float(x.sum().compute()) == pytest.approx(total)


def test_adapt_scales_up_under_load_and_down_when_idle_keeping_every_key(dask_cluster: DaskCluster, kube: Kube) -> None:
    import dask.array as da

    dask_cluster.scale(1)
    with Client(dask_cluster, timeout=60) as client:
        wait_for(lambda: len(client.scheduler_info()["workers"]) == 1, "1 worker", 120)
        x = da.ones((2000, 2000), chunks=(500, 500)).persist()
        wait(x, timeout=120)
        keys = set(client.who_has(x))
        adaptive = dask_cluster.adapt(minimum=1, maximum=4)  # the controller in the scheduler pod scales
        try:
            busy = client.map(time.sleep, [0.5] * 80, pure=False)
            wait_for(lambda: len(client.scheduler_info()["workers"]) >= 3, "adapt up to >= 3 workers", START_TIMEOUT)
            wait(busy, timeout=START_TIMEOUT)
            del busy
            wait_for(lambda: len(worker_pods(kube, "e2e")) == 1, "adapt down to 1 worker pod", START_TIMEOUT)
        finally:
            adaptive.stop()
        who_has = client.who_has(x)
        assert set(who_has) == keys and all(holders for holders in who_has.values())
        assert float(x.sum().compute()) == 2000 * 2000


def test_a_client_of_another_python_minor_is_refused_by_the_handle_and_by_the_scheduler_which_keeps_its_workers(
    node: Node, kube: Kube, debian_image: str
) -> None:
    def offset(x: int) -> int:  # defined here: pickled by value, as 3.11 bytecode, reading a global
        return x + OFFSET

    other = DEBIAN.default_python
    assert other != own_minor(), f"the default image runs this client's Python {other}: nothing to mismatch"
    checks_on = {"check_python": False, "env": {}}  # the handle's is checked below, by from_name
    with start(node, "e2e-python", debian_image, n_workers=2, resources=SMALL_WORKER, **checks_on) as cluster:
        cluster.wait_for_workers(2, timeout=START_TIMEOUT)
        # The handle's check: attaching fails before any client registers with the scheduler.
        minors = rf"runs Python {re.escape(other)}, this client Python {re.escape(own_minor())}"
        with pytest.raises(VersionMismatchError, match=rf"{minors}.*check_python"):
            DaskCluster.from_name("e2e-python", NAMESPACE, kubeconfig=str(node.kubeconfig))
        # A plain distributed.Client (the handle's check off): the scheduler refuses it at connect,
        # so the map that crashed every worker before the guard (a 3.11 function) is never sent.
        refusal = rf"{minors}.*-py{re.escape(own_minor())}\).*PYTHON_MISMATCH=allow"
        with pytest.raises(ImportError, match=refusal), Client(cluster, timeout=60) as client:
            wait(client.map(offset, range(5)), timeout=90)
        assert len(cluster.scheduler_info["workers"]) == 2
        scheduler_log = "\n".join(cluster.get_logs(cluster=False, workers=False).values())
        assert "refused client" in scheduler_log and f"Python {own_minor()}" in scheduler_log, scheduler_log[-3000:]
        assert "Lost all workers" not in scheduler_log, scheduler_log[-3000:]


def test_an_asynchronous_handle_attaches_in_async_code(node: Node, dask_cluster: DaskCluster) -> None:
    async def attach_and_compute() -> int:
        handle = DaskCluster.from_name(
            "e2e", NAMESPACE, kubeconfig=str(node.kubeconfig), check_python=False, asynchronous=True
        )
        async with handle as cluster, Client(cluster, asynchronous=True) as client:
            return int(await client.submit(sum, [4, 5]))

    assert asyncio.run(attach_and_compute()) == 9
    # Leaving `async with` of an attached handle left the cluster running.
    with Client(dask_cluster, timeout=60) as client:
        assert client.submit(sum, [1, 1]).result(timeout=60) == 2


def test_a_new_connection_reaches_the_replacement_scheduler_pod(dask_cluster: DaskCluster, kube: Kube) -> None:
    """The scheduler pod deleted while idle: its Deployment starts another; the figures (printed)
    go to docs/PERFORMANCE.md."""
    with Client(dask_cluster, timeout=60) as client:
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3
        workers = len(client.scheduler_info()["workers"])
        (old,) = kube.ready_pods(NAMESPACE, "e2e-scheduler")
        deleted = time.monotonic()
        kube.delete(POD, old, NAMESPACE)
        wait_for(lambda: kube.ready_pods(NAMESPACE, "e2e-scheduler") not in ([], [old]), "a new Ready scheduler", 300)
        ready = time.monotonic() - deleted
    # Through the same local port: the forward picks the new pod; the workers re-register there.
    with Client(dask_cluster.scheduler_address, security=dask_cluster.security, timeout=60) as client:
        answered = time.monotonic() - deleted
        client.wait_for_workers(workers, timeout=START_TIMEOUT)
        rejoined = time.monotonic() - deleted
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
    print(
        f"\nscheduler pod deleted: new pod Ready {ready:.1f} s, a client connected {answered:.1f} s, "
        f"all {workers} workers joined again {rejoined:.1f} s after the deletion"
    )


def test_two_of_four_workers_killed_mid_computation_the_result_is_still_right(
    node: Node, kube: Kube, debian_ref: str
) -> None:
    """One worker process killed with SIGKILL (its nanny starts another) and one worker pod deleted
    (its Deployment starts another), a quarter of the way into a computation that moves data
    between workers: the result is exact; the time it cost is printed (docs/PERFORMANCE.md)."""
    import dask.array as da

    x = da.ones((8000, 8000), chunks=(250, 250))
    total = (x + x.T).sum()  # 1024 blocks, each added to its transpose's: data moves between workers
    with start(node, "faults", debian_ref, n_workers=4, resources=SMALL_WORKER) as cluster, Client(cluster) as client:
        client.wait_for_workers(4, timeout=START_TIMEOUT)
        began = time.monotonic()
        assert float(client.compute(total).result(timeout=START_TIMEOUT)) == 2 * 8000 * 8000
        undisturbed = time.monotonic() - began
        first, second, *_ = sorted(client.scheduler_info()["workers"])
        pids = client.run(os.getpid, workers=[first])  # builtins: pickled by reference
        (pod,) = pods_of(client, kube, "faults", {second})
        began = time.monotonic()
        future = client.compute(total)
        time.sleep(undisturbed / 4)  # a quarter of the way in
        assert not future.done(), "the computation ended before the workers were killed"
        # The worker dies answering: its broken connection is the expected outcome, not an error.
        client.run(os.kill, pids[first], signal.SIGKILL, workers=[first], on_error="ignore")
        kube.delete(POD, pod, NAMESPACE)
        assert float(future.result(timeout=START_TIMEOUT)) == 2 * 8000 * 8000
        disturbed = time.monotonic() - began
        client.wait_for_workers(4, timeout=START_TIMEOUT)
    print(f"\n(x + x.T).sum() of 8000 x 8000 on 4 workers: {undisturbed:.1f} s; with 2 killed: {disturbed:.1f} s")


@pytest.mark.parametrize("scaler", ["in-scheduler", "in-client"])
def test_the_api_server_stopped_30_s_when_the_cluster_must_scale_up_then_scaling_goes_on(
    node: Node, kube: Kube, debian_ref: str, scaler: str
) -> None:
    """The API server is stopped (SIGSTOP: bound but silent, as a hung or cut-off one) for 30 s,
    and work arrives for an adaptive cluster of one worker from a client that reaches the
    scheduler's pod directly (the handle's port-forward runs over the API server). Whether the
    scheduler's controller scales (`adapt`) or Dask's Adaptive in this process (`adapt_in_client`,
    whose calls wait for the API server), nothing scales meanwhile and the one worker computes;
    the controller logs one warning, not a traceback a second. Resumed: the controller says so,
    the cluster scales up, every result arrives, the handle's client (stalled meanwhile) works,
    no pod restarted. The time to 3 workers after the resume is printed (docs/PERFORMANCE.md)."""
    with start(node, "e2e-api", debian_ref, n_workers=1, resources=SMALL_WORKER) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=START_TIMEOUT)
        if scaler == "in-scheduler":
            cluster.adapt(minimum=1, maximum=3)
        else:
            cluster.adapt_in_client(minimum=1, maximum=3, interval="1s", wait_count=3)
        (scheduler_pod,) = kube.list(POD, NAMESPACE, labels.label_selector("e2e-api", "scheduler"))
        direct = f"tls://{scheduler_pod['status']['podIP']}:8786"  # the pod network, not the API server
        api_server = node.api_server_pid()
        with Client(direct, security=cluster.security, timeout=60) as beside:
            os.kill(api_server, signal.SIGSTOP)
            try:
                futures = beside.map(time.sleep, [0.5] * 120, pure=False)  # a builtin: pickled by reference
                time.sleep(30)
                during = len(beside.scheduler_info()["workers"])
            finally:
                os.kill(api_server, signal.SIGCONT)
            resumed = time.monotonic()
            beside.wait_for_workers(3, timeout=START_TIMEOUT)
            scaled = time.monotonic() - resumed
            wait(futures, timeout=START_TIMEOUT)
            assert all(future.status == "finished" for future in futures)
        assert during == 1  # nothing could scale while the API server was away
        assert client.submit(sum, [1, 2]).result(timeout=60) == 3
        logs = cluster.get_logs(cluster=False)
        (scheduler_log,) = [text for pod, text in logs.items() if pod.startswith("e2e-api-scheduler-")]
        assert "the Kubernetes API server does not answer" in scheduler_log
        assert re.search(r"the Kubernetes API server answers again after \d+ s; scaling goes on", scheduler_log)
        assert "this round failed" not in scheduler_log
        restarts = [
            status.get("restartCount", 0)
            for pod in kube.list(POD, NAMESPACE, labels.label_selector("e2e-api"))
            for status in pod["status"].get("containerStatuses", [])
        ]
        assert restarts and set(restarts) == {0}
    print(
        f"\nAPI server stopped 30 s while work waited for workers ({scaler}): 3 workers {scaled:.1f} s after it resumed"
    )


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s")
        time.sleep(0.5)


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
    start_dask_cluster(  # the objects only: no scheduler connection needed
        name,
        namespace=NAMESPACE,
        image=debian_ref,
        n_workers=1,
        kubeconfig=str(node.kubeconfig),
        timeout=300,
        connect=False,
    )
    selector = labels.label_selector(name)
    assert kube.list(POD, NAMESPACE, selector)
    pod_names = {p["metadata"]["name"] for p in kube.list(POD, NAMESPACE, selector)}

    deleted = delete_dask_cluster(name, NAMESPACE, kubeconfig=str(node.kubeconfig))

    # Up to 7 (Deployments, Service, the scheduler's ServiceAccount, Role, RoleBinding, NetworkPolicy):
    # fewer when the garbage collector removed what the controller had adopted first.
    assert 1 <= deleted <= 7
    for kind in (*CLUSTER_KINDS, REPLICASET, POD):
        assert kube.list(kind, NAMESPACE, selector) == [], kind.name

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
    assert kube.list(POD, NAMESPACE, labels.label_selector("e2e-noimage")) == []


# The cluster runs itself: the controller in the scheduler pod (buildtools/cluster/controller.py).

STARTER = """
import sys, time
from buildtools.cluster.deploy import start_dask_cluster
cluster = start_dask_cluster("walk", namespace=sys.argv[1], image=sys.argv[2], kubeconfig=sys.argv[3],
                             timeout=600, n_workers=1, check_python=False, env={"PYTHON_MISMATCH": "allow"},
                             resources={"worker": {"requests": {"cpu": "10m", "memory": "64Mi"}}})
cluster.adapt(minimum=0, maximum=4)
print("adapting", flush=True)
time.sleep(3600)
"""


def test_adapt_goes_on_after_the_client_process_is_killed_from_zero_and_back_keeping_every_key(
    node: Node, kube: Kube, debian_ref: str
) -> None:
    import dask.array as da

    # SIGKILL once it adapts: no close, no cleanup, no client-side loop left.
    lines = killed_at(STARTER, [NAMESPACE, debian_ref, str(node.kubeconfig)], lambda line: True)
    assert [line.strip() for line in lines] == ["adapting"]
    try:
        # Nothing to do: the controller scales the one worker down to 0.
        wait_for(lambda: not worker_pods(kube, "walk"), "scale to 0 worker pods", START_TIMEOUT)
        with (
            DaskCluster.from_name("walk", NAMESPACE, kubeconfig=str(node.kubeconfig), check_python=False) as cluster,
            Client(cluster, timeout=60) as client,
        ):
            x = da.ones((2000, 2000), chunks=(500, 500)).persist()  # work from 0 workers brings one back
            wait(x, timeout=START_TIMEOUT)
            keys = set(client.who_has(x))
            busy = client.map(time.sleep, [0.5] * 120, pure=False)
            wait_for(lambda: len(worker_pods(kube, "walk")) >= 3, "scale up to >= 3 worker pods", START_TIMEOUT)
            wait(busy, timeout=START_TIMEOUT)
            del busy
            # Down to the one worker that must keep the persisted data (it has nowhere else to go).
            wait_for(lambda: len(worker_pods(kube, "walk")) == 1, "scale down to 1 worker pod", START_TIMEOUT)
            who_has = client.who_has(x)
            lost = [key for key in keys if not who_has.get(key)]
            assert set(who_has) == keys and lost == []
            assert float(x.sum().compute()) == 2000 * 2000
            del x
        # The data released and the client gone: back to 0 workers, the scheduler stays.
        wait_for(lambda: not worker_pods(kube, "walk"), "scale back to 0 worker pods", START_TIMEOUT)
        assert kube.ready_pods(NAMESPACE, "walk-scheduler")
    finally:
        delete_dask_cluster("walk", NAMESPACE, kubeconfig=str(node.kubeconfig))


def test_an_idle_cluster_deletes_itself_with_no_client_attached(node: Node, kube: Kube, debian_ref: str) -> None:
    with start(node, "idle", debian_ref, n_workers=1, resources=SMALL_WORKER, idle_timeout=60) as cluster:
        cluster.shutdown_on_close = False  # walk away: only the controller may delete it
        with Client(cluster, timeout=60) as client:
            assert client.submit(sum, [1, 2]).result(timeout=120) == 3
    finished = time.monotonic()
    selector = labels.label_selector("idle")
    kinds = [DEPLOYMENT, SERVICE, POD, SERVICE_ACCOUNT]

    def left() -> list[str]:
        return [f"{kind.name} {o['metadata']['name']}" for kind in kinds for o in kube.list(kind, NAMESPACE, selector)]

    wait_for(lambda: not left(), "deletion of the idle cluster (60 s idle timeout + 30 s)", 90)
    print(f"\nidle cluster gone {time.monotonic() - finished:.1f} s after its client left")


def group_pods(kube: Kube, name: str, group: str | None) -> set[str]:
    """The live pods of one worker group (None: the default group, whose pods carry no group label)."""
    selector = labels.label_selector(name, "worker") + (f",{labels.LABEL_GROUP}={group}" if group else "")
    pods = kube.list(POD, NAMESPACE, selector)
    return {
        p["metadata"]["name"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp") and (p["metadata"]["labels"].get(labels.LABEL_GROUP) == group)
    }


def test_work_needing_a_groups_resource_scales_only_that_group_from_zero_and_back(
    node: Node, kube: Kube, debian_ref: str
) -> None:
    accel = {"n_workers": 0, "dask_resources": {"ACCEL": 1}, "adapt": {"minimum": 0, "maximum": 2}}
    fields = {"n_workers": 1, "adapt": {"minimum": 1, "maximum": 3}, "worker_groups": {"accel": accel}}
    with start(node, "groups", debian_ref, resources=SMALL_WORKER, **fields) as cluster:
        assert (len(group_pods(kube, "groups", None)), group_pods(kube, "groups", "accel")) == (1, set())
        default_counts = []
        with Client(cluster, timeout=60) as client:
            future = client.submit(sum, [1, 2], resources={"ACCEL": 1}, pure=False)

            def accel_up() -> bool:
                default_counts.append(len(group_pods(kube, "groups", None)))
                return len(group_pods(kube, "groups", "accel")) == 1

            wait_for(accel_up, "1 pod of group accel", START_TIMEOUT)
            assert future.result(timeout=START_TIMEOUT) == 3
            accel_hosts = {w["host"] for w in client.scheduler_info()["workers"].values() if w["resources"]}
            assert len(accel_hosts) == 1  # the task ran on the worker that offers ACCEL

            def accel_down() -> bool:
                default_counts.append(len(group_pods(kube, "groups", None)))
                return not group_pods(kube, "groups", "accel")

            wait_for(accel_down, "group accel back to 0 pods", START_TIMEOUT)
            assert future.result(timeout=60) == 3  # its result moved to the default group's worker
        assert set(default_counts) == {1}, default_counts  # the default group kept its one worker
        replicas = kube.get(DEPLOYMENT, "groups-worker", NAMESPACE) or {}
        assert replicas["spec"]["replicas"] == 1


# --- batch jobs: a runner Job and a cluster it owns, with only Kubernetes' own controllers ---

JOB_SUM = """
import dask.array as da, distributed
with distributed.Client() as client:  # DASK_SCHEDULER_ADDRESS: the job's own cluster
    print("workers", len(client.scheduler_info()["workers"]), flush=True)
    print("sum", int(da.ones((2000, 2000), chunks=(500, 500)).sum().compute()), flush=True)
"""
JOB_FAILS = """
import distributed
with distributed.Client() as client:
    client.submit(sum, [1, 2]).result()
    raise ValueError("the job's own mistake")
"""
RUNNER_RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}


def run(node: Node, name: str, image: str, script: str, **options: Any) -> tuple[JobStatus, list[str]]:
    lines: list[str] = []
    status = run_job(
        ["python", "-c", script],
        name,
        namespace=NAMESPACE,
        image=image,
        resources=SMALL_WORKER,
        runner_resources=RUNNER_RESOURCES,
        kubeconfig=str(node.kubeconfig),
        timeout=START_TIMEOUT,
        on_log=lines.append,
        **options,
    )
    return status, lines


def objects_left(kube: Kube, name: str) -> list[str]:
    """Every object and pod of a job's cluster, the Job itself included (counted by label)."""
    selector = labels.label_selector(name)
    return [
        f"{k.name} {o['metadata']['name']}" for k in (*CLUSTER_KINDS, POD) for o in kube.list(k, NAMESPACE, selector)
    ]


def test_a_job_computes_gives_its_output_runs_again_at_once_and_leaves_nothing_after_its_ttl(
    node: Node, kube: Kube, debian_ref: str
) -> None:
    # Over TLS (the default): the runner gets the client settings from the job cluster's own Secret.
    status, lines = run(node, "job-sum", debian_ref, JOB_SUM, ttl_seconds_after_finished=300)
    assert (status.state, status.exit_code) == ("succeeded", 0), status
    assert "sum 4000000" in lines, lines
    print(f"\n{status.summary}")
    # The cluster went when the command ended (the controller); the Job stays for its status.
    wait_for(
        lambda: objects_left(kube, "job-sum") == [] or all("runner" in o for o in objects_left(kube, "job-sum")),
        "the cluster of a finished job gone",
        60,
    )
    assert job_status("job-sum", NAMESPACE, kubeconfig=str(node.kubeconfig)).state == "succeeded"
    # The same name again, right away: the finished run makes room; a new runner pod, a new name.
    again, lines = run(node, "job-sum", debian_ref, JOB_SUM, ttl_seconds_after_finished=10)
    assert (again.state, again.exit_code) == ("succeeded", 0) and "sum 4000000" in lines
    assert again.pod != status.pod
    finished = time.monotonic()
    wait_gone("the objects of job job-sum (TTL 10 s + 30 s)", lambda: objects_left(kube, "job-sum"), 40)
    print(f"job-sum: nothing left {time.monotonic() - finished:.1f} s after it finished")


def test_a_failing_job_raises_jobfailed_with_its_last_lines_and_leaves_nothing(
    node: Node, kube: Kube, debian_ref: str
) -> None:
    with pytest.raises(JobFailed) as raised:
        run(node, "job-fails", debian_ref, JOB_FAILS, ttl_seconds_after_finished=10)
    failure = raised.value
    assert "ValueError: the job's own mistake" in str(failure) and "job-fails-runner-" in str(failure)
    assert failure.exit_code == 1 and failure.pod is not None and failure.pod.startswith("job-fails-runner-")
    wait_gone("the objects of job job-fails (TTL 10 s + 30 s)", lambda: objects_left(kube, "job-fails"), 40)


JOB_CALLER = """
import sys
from buildtools.cluster.jobs import run_job
namespace, image, kubeconfig = sys.argv[1:]
script = "import time; print('running', flush=True); time.sleep(20); print('done', flush=True)"
run_job(["python", "-c", script], "job-orphan", namespace=namespace, image=image, kubeconfig=kubeconfig,
        n_workers=1, ttl_seconds_after_finished=10, timeout=600, on_log=lambda line: print(line, flush=True))
"""


def test_a_job_whose_caller_is_killed_completes_and_its_cluster_is_gone(
    node: Node, kube: Kube, debian_ref: str
) -> None:
    # The runner's log, followed by the caller; SIGKILL: the caller is gone while the job runs.
    args = [NAMESPACE, debian_ref, str(node.kubeconfig)]
    lines = killed_at(JOB_CALLER, args, lambda line: line.strip() == "running")
    assert lines and lines[-1].strip() == "running", f"the caller ended before the job ran: {lines}"

    def succeeded() -> bool:
        try:
            return job_status("job-orphan", NAMESPACE, kubeconfig=str(node.kubeconfig)).state == "succeeded"
        except ConfigError:  # deleted already (TTL): then it had finished
            return not objects_left(kube, "job-orphan")

    wait_for(succeeded, "job-orphan to complete without its caller", 120)
    wait_gone("the objects of job job-orphan (TTL 10 s + 30 s)", lambda: objects_left(kube, "job-orphan"), 40)


def test_the_job_command_follows_the_runner_exits_with_its_code_and_job_status_tells_later(
    node: Node, kube: Kube, debian_ref: str
) -> None:
    kubeconfig = ["--namespace", NAMESPACE, "--kubeconfig", str(node.kubeconfig)]
    script = "import sys; print('from the runner', flush=True); sys.exit(3)"
    job = subprocess.run(
        [sys.executable, "-m", "buildtools", "job", "job-cli", "--image", debian_ref, "--workers", "1", *kubeconfig,
         "--ttl", "300", "--", "python", "-c", script],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=START_TIMEOUT,
    )  # fmt: skip
    assert job.returncode == 3, job.stderr
    assert "from the runner" in job.stdout.splitlines(), job.stdout
    assert "job job-cli failed (pod job-cli-runner-" in job.stderr and "Traceback" not in job.stderr, job.stderr
    status = subprocess.run(
        [sys.executable, "-m", "buildtools", "job-status", "job-cli", *kubeconfig],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert status.returncode == 1 and "failed" in status.stdout, status.stdout + status.stderr
    delete_dask_cluster("job-cli", NAMESPACE, kubeconfig=str(node.kubeconfig))
    assert objects_left(kube, "job-cli") == []
