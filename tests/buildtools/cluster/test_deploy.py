"""start_dask_cluster / delete_dask_cluster / prepull_images against a REAL Kubernetes API
server (etcd, kube-apiserver, controller-manager, scheduler on 127.0.0.1) with kwok fake
nodes: Deployments and DaemonSets really roll out; containers do not run (see test_e2e for that).
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from buildtools.cluster import contract, labels, preflight
from buildtools.cluster import kube as kube_module
from buildtools.cluster.controller import DELETION_COST, RETIRED_COST
from buildtools.cluster.credentials import from_secret, of_cluster_named
from buildtools.cluster.deploy import DaskCluster, delete_dask_cluster, prepull_images, start_dask_cluster
from buildtools.cluster.kinds import (
    DAEMONSET,
    DEPLOYMENT,
    NETWORK_POLICY,
    NODE,
    POD,
    REPLICASET,
    SECRET,
    SERVICE,
    Kind,
)
from buildtools.cluster.kube import Kube, in_cluster
from buildtools.cluster.reach import PortForward
from buildtools.cluster.render import render_cluster, render_rbac
from buildtools.cluster.specs import ClusterSpec
from buildtools.cluster.waits import Deadline, rollout_state, wait_until
from buildtools.errors import (
    AdmissionError,
    ConfigError,
    DeployError,
    ForbiddenError,
    UnschedulableError,
    WaitTimeout,
)
from buildtools.settings import REPO_ROOT
from tests.helpers.host import killed_at
from tests.helpers.kwok_cluster import (
    FAKE_LOG_LINE,
    GPU_LABEL,
    SCHEDULABLE,
    add_fake_node,
    api_client,
    delete_fake_node,
    kubeconfig_for_service_account,
)

pytestmark = pytest.mark.k8s

IMAGE = "127.0.0.1:5000/minimaldask/debian:2026.8.0-py3.13"  # amd64, arm64, arm/v7 (images/debian/image.toml)
DATAFRAME_IMAGE = "127.0.0.1:5000/minimaldask/debian-dataframe:2026.8.0-py3.13"  # amd64, arm64 only


def start(*args: Any, **kwargs: Any) -> DaskCluster:
    """start_dask_cluster on fake nodes: no container runs there, so no scheduler to connect to."""
    return start_dask_cluster(*args, connect=False, **kwargs)


def objects_of(kubeconfig: str, namespace: str, cluster: str) -> dict[str, list[str]]:
    """Everything carrying the cluster's label, across all the kinds that could hold it."""
    selector = labels.label_selector(cluster)
    kube = Kube.connect(kubeconfig)
    found = {}
    for kind in [
        DEPLOYMENT,
        REPLICASET,
        DAEMONSET,
        SERVICE,
        NETWORK_POLICY,
        POD,
        Kind("v1", "ConfigMap"),
        SECRET,
    ]:
        names = [o["metadata"]["name"] for o in kube.list(kind, namespace, selector)]
        if names:
            found[kind.name] = names
    return found


def versions_of(kubeconfig: str, namespace: str, cluster: str) -> dict[str, tuple[str, int, str]]:
    kube = Kube.connect(kubeconfig)
    result = {}
    for kind in [DEPLOYMENT, SERVICE, SECRET]:
        for obj in kube.list(kind, namespace, labels.label_selector(cluster)):
            meta = obj["metadata"]
            result[f"{kind.name}/{meta['name']}"] = (meta["uid"], meta.get("generation", 0), meta["resourceVersion"])
    return result


def test_start_wait_reapply_scale_delete(kubeconfig: str, namespace: str) -> None:
    seen: list[str] = []
    cluster = start(
        "c1",
        namespace=namespace,
        image=IMAGE,
        n_workers=2,
        tls=True,
        timeout=120,
        kubeconfig=kubeconfig,
        on_progress=seen.append,
    )
    assert any("waiting for Deployment" in line and "replicas ready" in line for line in seen)
    found = objects_of(kubeconfig, namespace, "c1")
    assert found["Deployment"] == ["c1-scheduler", "c1-worker"]
    assert found["Service"] == ["c1-scheduler"]
    assert found["NetworkPolicy"] == ["c1-dask"]
    assert found["Secret"] == ["c1-tls"]  # its own TLS credentials
    assert len(found["Pod"]) == 3

    kube = Kube.connect(kubeconfig)
    service = kube.get(SERVICE, "c1-scheduler", namespace)
    assert service is not None and service["spec"]["type"] == "ClusterIP"
    worker = kube.get(DEPLOYMENT, "c1-worker", namespace)
    assert worker is not None
    env = {e["name"]: e.get("value") for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DASK_SCHEDULER_ADDRESS"] == f"tls://c1-scheduler.{namespace}.svc:8786"

    # The same spec again changes nothing: same objects, same generations, same versions (the
    # Secret's too: a re-apply keeps the key that the pods and clients hold).
    before = versions_of(kubeconfig, namespace, "c1")
    start(spec=cluster.spec, timeout=120, kubeconfig=kubeconfig)
    assert versions_of(kubeconfig, namespace, "c1") == before

    # A changed field updates in place: only the workers' spec changes, the Service stays.
    start(spec=cluster.spec, n_workers=3, timeout=120, kubeconfig=kubeconfig)
    after = versions_of(kubeconfig, namespace, "c1")
    assert after["Service/c1-scheduler"] == before["Service/c1-scheduler"]
    assert after["Deployment/c1-scheduler"][:2] == before["Deployment/c1-scheduler"][:2]
    assert after["Deployment/c1-worker"][0] == before["Deployment/c1-worker"][0]
    assert after["Deployment/c1-worker"][1] == before["Deployment/c1-worker"][1] + 1

    cluster.scale(5)
    cluster.wait_for_pods(timeout=120)
    assert len(objects_of(kubeconfig, namespace, "c1")["Pod"]) == 6

    assert delete_dask_cluster("c1", namespace, kubeconfig=kubeconfig, timeout=120) == 8
    assert objects_of(kubeconfig, namespace, "c1") == {}
    assert delete_dask_cluster("c1", namespace, kubeconfig=kubeconfig) == 0  # idempotent


def test_prepull_first_with_the_clusters_scheduling_options(kubeconfig: str, namespace: str) -> None:
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    options = {"image": IMAGE, "tolerations": [toleration], "timeout": 120, "kubeconfig": kubeconfig}
    with start("c7", namespace=namespace, prepull=True, **options):
        assert objects_of(kubeconfig, namespace, "c7")["DaemonSet"] == ["c7-prepuller"]
        pods = Kube.connect(kubeconfig).list(POD, namespace, labels.label_selector("c7", "prepuller"))
        assert "gpu-1" in {p["spec"]["nodeName"] for p in pods}  # the cluster's toleration
    assert objects_of(kubeconfig, namespace, "c7") == {}  # the prepuller goes with the cluster


def test_context_manager_removes_the_cluster(kubeconfig: str, namespace: str) -> None:
    with start("c2", namespace=namespace, image=IMAGE, n_workers=1, timeout=120, kubeconfig=kubeconfig):
        assert objects_of(kubeconfig, namespace, "c2")
    assert objects_of(kubeconfig, namespace, "c2") == {}


def test_from_name_attaches_and_changes_nothing(kubeconfig: str, namespace: str) -> None:
    resources = {"worker": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "1Gi"}}}
    cluster = start("c8", namespace=namespace, image=IMAGE, n_workers=2, resources=resources, kubeconfig=kubeconfig)
    before = versions_of(kubeconfig, namespace, "c8")
    with DaskCluster.from_name("c8", namespace, kubeconfig=kubeconfig, connect=False) as attached:
        assert attached.spec.model_dump() == cluster.spec.model_dump()
    # Leaving `with` of a handle that did not create the cluster leaves it as it was.
    assert versions_of(kubeconfig, namespace, "c8") == before
    with pytest.raises(DeployError, match=rf"there is no Dask cluster {namespace}/nope"):
        DaskCluster.from_name("nope", namespace, kubeconfig=kubeconfig, connect=False)


def test_with_deletes_only_a_cluster_it_created_or_when_asked(kubeconfig: str, namespace: str) -> None:
    start("c9", namespace=namespace, image=IMAGE, kubeconfig=kubeconfig)
    with start("c9", namespace=namespace, kubeconfig=kubeconfig) as again:
        assert not again.shutdown_on_close
    assert "Deployment" in objects_of(kubeconfig, namespace, "c9")
    with DaskCluster.from_name("c9", namespace, kubeconfig=kubeconfig, connect=False, shutdown_on_close=True):
        pass
    assert objects_of(kubeconfig, namespace, "c9") == {}


def test_reapplying_changes_only_the_fields_given(kubeconfig: str, namespace: str) -> None:
    limits = {"cpu": "1", "memory": "1Gi"}
    cluster = start(
        "c10",
        namespace=namespace,
        image=IMAGE,
        n_workers=2,
        resources={"worker": {"limits": limits}},
        env={"A": "1"},
        kubeconfig=kubeconfig,
    )
    cluster.scale(4)
    cluster.wait_for_pods(timeout=120)
    again = start("c10", namespace=namespace, env={"A": "2"}, timeout=120, kubeconfig=kubeconfig)
    worker = Kube.connect(kubeconfig).get(DEPLOYMENT, "c10-worker", namespace)
    assert worker is not None
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert worker["spec"]["replicas"] == 4  # the workers scaled since, not the first n_workers
    assert container["image"] == IMAGE  # not the default image
    assert container["resources"]["limits"] == limits
    assert {e["name"]: e.get("value") for e in container["env"]}["A"] == "2"
    assert again.spec.n_workers == 4 and again.spec.env == {"A": "2"}


def test_the_network_policy_comes_with_the_cluster_and_goes_when_turned_off(kubeconfig: str, namespace: str) -> None:
    start("np", namespace=namespace, image=IMAGE, n_workers=0, timeout=120, kubeconfig=kubeconfig)
    kube = Kube.connect(kubeconfig)
    policy = kube.get(NETWORK_POLICY, "np-dask", namespace)
    assert policy is not None and policy["spec"]["podSelector"] == {"matchLabels": {labels.LABEL_CLUSTER: "np"}}
    # Turned off on the running cluster: the applied policy is deleted (an apply alone would leave it).
    start("np", namespace=namespace, network_policy=False, timeout=120, kubeconfig=kubeconfig)

    # A foreground deletion: the garbage collector removes the object moments later (seen to lag).
    def gone() -> tuple[bool, str]:
        return kube.get(NETWORK_POLICY, "np-dask", namespace) is None, "still there"

    wait_until(gone, "the NetworkPolicy's deletion", 60, lambda _: None)
    # A later re-apply keeps it off (the stored spec), and the deletion finds nothing more of it.
    start("np", namespace=namespace, n_workers=1, timeout=120, kubeconfig=kubeconfig)
    assert "NetworkPolicy" not in objects_of(kubeconfig, namespace, "np")
    assert delete_dask_cluster("np", namespace, kubeconfig=kubeconfig) == 7  # with its TLS Secret (the default)


def test_the_forward_re_picks_a_ready_pod_of_the_service_when_one_fails(kubeconfig: str, namespace: str) -> None:
    start("c11", namespace=namespace, image=IMAGE, n_workers=0, timeout=120, kubeconfig=kubeconfig)
    kube = Kube.connect(kubeconfig)
    kube.patch_scale("c11-scheduler", namespace, 2)  # two Ready pods behind the scheduler Service
    wait_until(lambda: (len(kube.ready_pods(namespace, "c11-scheduler")) == 2, "ready"), "2 pods", 60, lambda _: None)

    picked: list[str] = []

    class Recording(PortForward):
        def pick_pod(self, failed: set[str]) -> str:
            picked.append(super().pick_pod(failed))
            return picked[-1]

    forward = Recording(kube, namespace, "c11-scheduler", 8786, open_timeout=5.0, attempts=2)
    forward.start()
    try:
        # kwok's fake pods have no port to forward to: each attempt fails, the next picks the other pod.
        with socket.create_connection(("127.0.0.1", forward.local_port), timeout=60) as connection:
            assert connection.recv(1) == b""
    finally:
        forward.close()
    assert len(picked) == 2 and set(picked) == set(kube.ready_pods(namespace, "c11-scheduler")), picked
    assert f"{namespace}/{picked[1]}:8786, attempt 2/2" in forward.last_error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "ok", "n_workers": -1}, "n_workers"),
        ({"name": "ok", "service_type": "Ingress"}, "service_type"),
        ({"name": "ok", "resources": {"worker": {"limits": {"memory": "lots"}}}}, "memory"),
        ({"name": "ok", "n_worker": 2}, r"^unknown key 'n_worker' \(known: name, namespace, image, n_workers, "),
        ({"spec": ClusterSpec(name="ok", image=IMAGE), "n_workers": -1}, "n_workers must be an integer >= 0"),
        ({}, "name must be given"),
    ],
)
def test_bad_input_fails_before_anything_is_created(
    kubeconfig: str, namespace: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        start(namespace=namespace, image=IMAGE, kubeconfig=kubeconfig, **kwargs)
    kube = Kube.connect(kubeconfig)
    assert kube.list(DEPLOYMENT, namespace, "") == []
    assert kube.list(SERVICE, namespace, "") == []


def test_missing_namespace_and_unknown_context(kubeconfig: str) -> None:
    with pytest.raises(ConfigError, match="namespace 'does-not-exist' does not exist"):
        start("c3", namespace="does-not-exist", image=IMAGE, kubeconfig=kubeconfig)
    with pytest.raises(ConfigError, match="cannot load the Kubernetes configuration"):
        start("c3", namespace="default", image=IMAGE, kubeconfig=kubeconfig, context="no-such-context")


def test_unschedulable_names_the_pod_and_the_schedulers_message(kubeconfig: str, namespace: str) -> None:
    with pytest.raises(UnschedulableError) as error:
        start(
            "c4",
            namespace=namespace,
            image=IMAGE,
            n_workers=1,
            timeout=15,
            kubeconfig=kubeconfig,
            node_selector={"kubernetes.io/arch": "s390x"},
        )
    assert error.value.pod.startswith("c4-scheduler-")
    assert "node(s) didn't match Pod's node affinity/selector" in error.value.detail
    # A failed start leaves nothing half-deployed.
    assert objects_of(kubeconfig, namespace, "c4") == {}


def test_timeout_names_what_it_waited_for(kubeconfig: str, namespace: str) -> None:
    with pytest.raises(
        WaitTimeout, match=rf"waiting for Deployment {namespace}/c5-scheduler; last state: 0/1 replicas"
    ):
        start("c5", namespace=namespace, image=IMAGE, timeout=0.01, kubeconfig=kubeconfig)
    assert objects_of(kubeconfig, namespace, "c5") == {}


def test_keep_on_failure_leaves_the_objects_for_inspection(kubeconfig: str, namespace: str) -> None:
    with pytest.raises(WaitTimeout):
        start("c6", namespace=namespace, image=IMAGE, timeout=0.01, kubeconfig=kubeconfig, keep_on_failure=True)
    assert "Deployment" in objects_of(kubeconfig, namespace, "c6")
    delete_dask_cluster("c6", namespace, kubeconfig=kubeconfig)


def test_prepuller_reaches_every_schedulable_node_and_new_ones(kubeconfig: str, namespace: str) -> None:
    result = prepull_images([IMAGE], namespace, name="pp", timeout=120, kubeconfig=kubeconfig)
    assert (result.ready, result.desired) == (SCHEDULABLE, SCHEDULABLE)
    kube = Kube.connect(kubeconfig)
    pods = kube.list(POD, namespace, labels.label_selector("pp", "prepuller"))
    assert "gpu-1" not in {p["spec"]["nodeName"] for p in pods}

    add_fake_node(kubeconfig, "late-1", arch="amd64")
    try:
        # Nothing is re-applied: the DaemonSet alone puts the prepuller on the new node.
        def on_new_node() -> tuple[bool, str]:
            ds = kube.get(DAEMONSET, "pp-prepuller", namespace) or {}
            done, state = rollout_state(ds)
            return done and ds["status"]["desiredNumberScheduled"] == SCHEDULABLE + 1, state

        assert (
            wait_until(on_new_node, "the prepuller on late-1", 120, lambda _: None)
            == f"{SCHEDULABLE + 1}/{SCHEDULABLE + 1} nodes ready"
        )
    finally:
        delete_fake_node(kubeconfig, "late-1")


def test_prepuller_reaches_the_gpu_node_only_with_a_toleration(kubeconfig: str, namespace: str) -> None:
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    result = prepull_images(
        [IMAGE, "127.0.0.1:5000/other:1"],
        namespace,
        name="gpu",
        tolerations=[toleration],
        node_selector={"kubernetes.io/arch": "amd64"},
        timeout=120,
        kubeconfig=kubeconfig,
    )
    kube = Kube.connect(kubeconfig)
    pods = kube.list(POD, namespace, labels.label_selector("gpu", "prepuller"))
    assert {p["spec"]["nodeName"] for p in pods} == {"amd64-1", "amd64-2", "amd64-3", "gpu-1"}
    assert result.ready == 4
    assert len(pods[0]["spec"]["initContainers"]) == 2


def apply_all(kubeconfig: str, objects: list[dict[str, Any]]) -> None:
    kube = Kube.connect(kubeconfig)
    for obj in objects:
        kube.apply(obj)


def test_deploy_as_the_documented_role_succeeds(kubeconfig: str, namespace: str, tmp_path: Path) -> None:
    apply_all(kubeconfig, render_rbac(namespace))
    as_account = kubeconfig_for_service_account(kubeconfig, namespace, "minimaldask-deployer", tmp_path / "sa")
    cluster = start("rb", namespace=namespace, image=IMAGE, n_workers=1, timeout=120, kubeconfig=as_account)
    # Every pod's log, by pod name (the Role's pods/log); kwok's fake containers all log one line.
    logs = cluster.get_logs(cluster=False)
    assert sorted(name.rsplit("-", 2)[0] for name in logs) == ["rb-scheduler", "rb-worker"]
    assert set(logs.values()) == {FAKE_LOG_LINE + "\n"}
    assert cluster.get_logs(cluster=False, tail=0) == dict.fromkeys(logs, "")
    # Scaling: the worker Deployment's replicas, and the retired pods' deletion cost.
    cluster.scale(2)
    cluster.wait_for_pods(timeout=120)
    (pod, *_) = (name for name in logs if name.startswith("rb-worker-"))
    Kube.connect(as_account).annotate(POD, pod, namespace, {DELETION_COST: RETIRED_COST})
    assert delete_dask_cluster("rb", namespace, kubeconfig=as_account, timeout=120) == 8  # with its TLS Secret


# A Role without one of its rules: the preflight names each of its verbs before anything exists
# (secrets: even a cluster without TLS, since the deletion looks for its Secret).
@pytest.mark.parametrize(
    ("resource", "named"),
    [
        ("services", r"lacks: get services, list services, .* delete serviceaccounts \(.*docs/RBAC.md"),
        ("secrets", r"lacks: get secrets, list secrets, create secrets, patch secrets, delete secrets \(.*RBAC.md"),
    ],
)
def test_a_narrower_role_fails_with_a_clear_forbidden_error(
    kubeconfig: str, namespace: str, tmp_path: Path, resource: str, named: str
) -> None:
    objects = render_rbac(namespace)
    role = next(o for o in objects if o["kind"] == "Role")
    role["rules"] = [r for r in role["rules"] if resource not in r.get("resources", [])]
    apply_all(kubeconfig, objects)
    as_account = kubeconfig_for_service_account(kubeconfig, namespace, "minimaldask-deployer", tmp_path / "sa")
    with pytest.raises(ForbiddenError, match=named):
        start("rb2", namespace=namespace, image=IMAGE, n_workers=1, timeout=60, kubeconfig=as_account)
    assert objects_of(kubeconfig, namespace, "rb2") == {}


def test_deleting_what_is_already_gone_is_no_error(kubeconfig: str, namespace: str) -> None:
    Kube.connect(kubeconfig).delete(DEPLOYMENT, "never-was", namespace)


@pytest.fixture
def full_node(kubeconfig: str) -> Iterator[str]:
    """A node with room for no pod: a prepuller pod for it is never scheduled, so never
    Ready, like on a node that is full or broken."""
    add_fake_node(kubeconfig, "full-1", labels={"minimaldask-test/full": "yes"}, pods="0")
    kube = Kube.connect(kubeconfig)

    def ready() -> tuple[bool, str]:
        conditions = ((kube.get(NODE, "full-1") or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions), "not Ready"

    # Known to the controllers before the prepuller is applied (else it counts no node at all).
    wait_until(ready, "node full-1", 60, lambda _: None)
    try:
        yield "full-1"
    finally:
        delete_fake_node(kubeconfig, "full-1")


@pytest.mark.parametrize("relaxed", [True, False], ids=["relaxed", "strict"])
def test_a_node_that_never_pulls_is_reported_or_fails_the_strict_prepull(
    kubeconfig: str, namespace: str, full_node: str, relaxed: bool
) -> None:
    def prepull() -> object:
        return prepull_images(
            [IMAGE],
            namespace,
            name="full",
            node_selector={"minimaldask-test/full": "yes"},
            timeout=10,
            relaxed=relaxed,
            kubeconfig=kubeconfig,
        )

    if relaxed:
        result = prepull()
        assert result.ready == 0 and len(result.missing_nodes) == 1, result
    else:
        with pytest.raises(UnschedulableError, match=r"pod full-prepuller-\w+: Unschedulable: .*Too many pods"):
            prepull()


def nodes_of(kubeconfig: str, namespace: str, cluster: str, component: str) -> list[str]:
    pods = Kube.connect(kubeconfig).list(POD, namespace, labels.label_selector(cluster, component))
    return sorted(p["spec"].get("nodeName") or "?" for p in pods)


def test_pods_land_only_on_nodes_of_the_images_architectures(kubeconfig: str, namespace: str) -> None:
    options = {"namespace": namespace, "timeout": 120, "kubeconfig": kubeconfig}
    # The dataframe image has no arm/v7 build: spread over every other node, never on arm-1.
    with start("df", image=DATAFRAME_IMAGE, n_workers=15, **options):
        workers = nodes_of(kubeconfig, namespace, "df", "worker")
        assert len(workers) == 15 and "arm-1" not in workers, workers
        assert {"arm64-1", "arm64-2"} & set(workers), workers  # 64-bit ARM is fine
    # An image said to be built for arm/v7 only: every pod on the one arm node.
    with start("v7", image="127.0.0.1:5000/custom:1", image_platforms=["linux/arm/v7"], n_workers=3, **options):
        assert nodes_of(kubeconfig, namespace, "v7", "scheduler") == ["arm-1"]
        assert nodes_of(kubeconfig, namespace, "v7", "worker") == ["arm-1"] * 3


def test_gpu_workers_go_to_the_gpu_node_and_the_scheduler_does_not(kubeconfig: str, namespace: str) -> None:
    with start(
        "gpu",
        namespace=namespace,
        image=IMAGE,
        n_workers=3,
        resources={"worker": {"limits": {"nvidia.com/gpu": "1"}}},
        placement={"worker": {"node_selector": {GPU_LABEL: "true"}}},
        timeout=120,
        kubeconfig=kubeconfig,
    ):
        assert nodes_of(kubeconfig, namespace, "gpu", "worker") == ["gpu-1"] * 3  # tolerated by default
        (scheduler,) = nodes_of(kubeconfig, namespace, "gpu", "scheduler")
        assert scheduler != "gpu-1"


def set_quota(kubeconfig: str, namespace: str, hard: dict[str, str]) -> None:
    """A ResourceQuota, once the quota controller has computed its status (until then the
    admission refuses every pod with "status unknown")."""
    with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_resource_quota(namespace, {"metadata": {"name": "quota"}, "spec": {"hard": hard}})

        def computed() -> tuple[bool, str]:
            status = core.read_namespaced_resource_quota("quota", namespace).status
            return bool(status and status.hard), "status not computed"

        wait_until(computed, "the quota's status", 60, lambda _: None)


def test_a_quota_that_forbids_the_pods_fails_the_dry_run_with_nothing_created(kubeconfig: str, namespace: str) -> None:
    set_quota(kubeconfig, namespace, {"pods": "0"})
    with pytest.raises(AdmissionError, match=rf"dry-run create Pod {namespace}/q1-scheduler-dry-run: .*exceeded quota"):
        start("q1", namespace=namespace, image=IMAGE, timeout=60, kubeconfig=kubeconfig, keep_on_failure=True)
    # Even kept on failure: nothing was ever created.
    assert objects_of(kubeconfig, namespace, "q1") == {}


def test_pod_security_refuses_root_pods_at_the_dry_run(kubeconfig: str, namespace: str) -> None:
    with api_client(kubeconfig) as api:
        enforce = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
        client.CoreV1Api(api).patch_namespace(namespace, enforce)
    options = {"namespace": namespace, "image": IMAGE, "timeout": 60, "kubeconfig": kubeconfig, "keep_on_failure": True}
    with pytest.raises(AdmissionError, match=r"dry-run create Pod .*/ps-scheduler-dry-run: .*violates PodSecurity"):
        start("ps", system_packages=["curl"], **options)
    assert objects_of(kubeconfig, namespace, "ps") == {}
    with start("ok", **options):  # the default pods meet "restricted"
        pass


def test_the_dry_run_waits_for_a_service_account_that_appears_and_names_one_that_never_does(
    kubeconfig: str, namespace: str
) -> None:
    """A pod's ServiceAccount missing at first (as `default` is in a namespace made a moment
    ago) is waited for; one that never comes fails at the deadline, naming it."""
    (scheduler,) = [
        o
        for o in render_cluster(ClusterSpec(name="sa", namespace=namespace, image=IMAGE))
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "sa-scheduler"
    ]
    pod = preflight.template_pod(scheduler)
    pod["spec"]["serviceAccountName"] = "later"
    kube = Kube.connect(kubeconfig)
    seen: list[str] = []
    refused = threading.Event()

    def progress(line: str) -> None:
        seen.append(line)
        if "does not exist" in line:
            refused.set()

    def create_the_account() -> None:
        assert refused.wait(60)  # created only once admission has refused the pod for lacking it
        with api_client(kubeconfig) as api:
            client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": "later"}})

    creator = threading.Thread(target=create_the_account)
    creator.start()
    preflight.dry_run_pod(kube, pod, Deadline.after(60), progress)
    creator.join()
    waiting = f"waiting for admission of Pod {namespace}/sa-scheduler-dry-run"
    assert seen[0] == f"{waiting}: ServiceAccount {namespace}/later does not exist (yet)"
    assert seen[-1].endswith(": admitted")

    pod["spec"]["serviceAccountName"] = "never"
    with pytest.raises(WaitTimeout, match=rf"timed out after 3 s .*ServiceAccount {namespace}/never does not exist"):
        preflight.dry_run_pod(kube, pod, Deadline.after(3), seen.append)


def test_a_role_without_a_verb_fails_the_preflight_naming_it(kubeconfig: str, namespace: str, tmp_path: Path) -> None:
    objects = render_rbac(namespace)
    role = next(o for o in objects if o["kind"] == "Role")
    role["rules"][0]["verbs"].remove("delete")  # deployments and daemonsets: the start itself would not notice
    apply_all(kubeconfig, objects)
    as_account = kubeconfig_for_service_account(kubeconfig, namespace, "minimaldask-deployer", tmp_path / "sa")
    with pytest.raises(ForbiddenError, match=r"needs permissions this identity lacks: delete deployments\.apps \("):
        start("pf", namespace=namespace, image=IMAGE, timeout=60, kubeconfig=as_account)
    with pytest.raises(ForbiddenError, match=r"lacks: delete deployments\.apps, delete daemonsets\.apps \("):
        start("pf", namespace=namespace, image=IMAGE, timeout=60, kubeconfig=as_account, prepull=True)
    assert objects_of(kubeconfig, namespace, "pf") == {}


def test_a_replica_failure_is_named_at_once_not_at_the_deadline(kubeconfig: str, namespace: str) -> None:
    set_quota(kubeconfig, namespace, {"pods": "1"})  # the scheduler fits, no worker does
    started = time.monotonic()
    with pytest.raises(
        AdmissionError, match=rf"Deployment {namespace}/rf-worker: ReplicaFailure: FailedCreate: .*exceeded quota"
    ):
        start("rf", namespace=namespace, image=IMAGE, n_workers=2, timeout=120, kubeconfig=kubeconfig)
    assert time.monotonic() - started < 60  # half the 120 s deadline: named at once, not waited out
    assert objects_of(kubeconfig, namespace, "rf") == {}


def test_one_deadline_for_the_whole_start_prepull_included(kubeconfig: str, namespace: str, full_node: str) -> None:
    """The prepull waits for a node that never pulls (until the deadline: relaxed), and the
    rollout after it gets only what is left: the start fails after one timeout, not two."""
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"timed out after 30 s waiting for Deployment .*/dl-scheduler"):
        start(
            "dl",
            namespace=namespace,
            image=IMAGE,
            prepull=True,
            placement={"worker": {"node_selector": {"minimaldask-test/full": "yes"}}},
            timeout=30,
            kubeconfig=kubeconfig,
        )
    assert time.monotonic() - started < 50  # one 30 s deadline with 20 s for cleanup and API calls; two would be 60 s


def test_an_explicit_kubeconfig_wins_over_the_pods_own_account(
    kubeconfig: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a notebook pod deploying to another cluster: the pod's account is there, and ignored."""
    token = tmp_path / "token"
    token.write_text("not used")
    monkeypatch.setattr(kube_module, "SERVICE_ACCOUNT_TOKEN", str(token))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")  # never contacted
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert in_cluster()
    with start("ic", namespace=namespace, image=IMAGE, timeout=60, kubeconfig=kubeconfig) as cluster:
        # Not the other cluster's .svc name, unreachable from here: a local forward (kwok's
        # fake pods are Ready, so the forward is set up; no scheduler answers through it).
        address = cluster._reach.address(contract.COMM_PORT_NAME, contract.SCHEDULER_PORT, "tcp")
        assert address.startswith("tcp://127.0.0.1:"), address
    monkeypatch.setenv("KUBECONFIG", kubeconfig)  # $KUBECONFIG is explicit too
    assert Kube.connect().in_cluster is False


@pytest.mark.parametrize("prepull", [False, True], ids=["no-prepull", "prepull"])
@pytest.mark.parametrize("platform_uid", [False, True], ids=["fixed-uid", "platform-uid"])
def test_the_dry_run_checks_exactly_the_objects_the_start_applies(
    kubeconfig: str, namespace: str, monkeypatch: pytest.MonkeyPatch, prepull: bool, platform_uid: bool
) -> None:
    """Issue 18's defect: with prepull and platform_uid the dry run's prepuller had runAsUser 1000
    and the applied one none. Every apply is recorded on its way to the real API server."""
    applied: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    real_apply = Kube.apply

    def recording_apply(self: Kube, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        applied[dry_run].append(copy.deepcopy(obj))
        return real_apply(self, obj, dry_run=dry_run)

    monkeypatch.setattr(Kube, "apply", recording_apply)
    name = f"p{int(prepull)}{int(platform_uid)}"
    start(
        name,
        namespace=namespace,
        image=IMAGE,
        prepull=prepull,
        tls=True,
        platform_uid=platform_uid,
        timeout=120,
        kubeconfig=kubeconfig,
    )
    dry_run, real = applied[True], applied[False]
    # The RoleBinding of the Role still to come is judged at its real apply only (preflight.py).
    assert [o for o in real if o["kind"] != "RoleBinding"] == dry_run
    # The new cluster's own TLS Secret comes first (after the prepuller): its pods mount it.
    assert [o["kind"] for o in real][:2] == (["DaemonSet", "Secret"] if prepull else ["Secret", "NetworkPolicy"])
    for obj in real:
        if obj["kind"] in ("Deployment", "DaemonSet"):
            context = obj["spec"]["template"]["spec"]["securityContext"]
            assert ("runAsUser" in context) is not platform_uid, obj["metadata"]["name"]


def test_worker_groups_roll_out_scale_on_their_own_and_keep_their_count_on_a_reapply(
    kubeconfig: str, namespace: str
) -> None:
    groups = {"big": {"n_workers": 1, "dask_resources": {"BIG": 1}, "env": {"B": "1"}}}
    cluster = start("c12", namespace=namespace, image=IMAGE, worker_groups=groups, timeout=120, kubeconfig=kubeconfig)
    kube = Kube.connect(kubeconfig)
    big = kube.get(DEPLOYMENT, "c12-worker-big", namespace)
    assert big is not None and big["status"]["readyReplicas"] == 1  # the start waited for the group too
    env = {e["name"]: e.get("value") for e in big["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ARGUMENTS"] == "--resources BIG=1" and env["B"] == "1"
    cluster.scale(3, group="big")
    cluster.wait_for_pods(timeout=120, group="big")
    assert (kube.get(DEPLOYMENT, "c12-worker", namespace) or {})["spec"]["replicas"] == 1  # the default group
    again = start(
        "c12", namespace=namespace, worker_groups=groups | {"big": {"env": {"B": "2"}}}, kubeconfig=kubeconfig
    )
    assert (kube.get(DEPLOYMENT, "c12-worker-big", namespace) or {})["spec"]["replicas"] == 3
    assert again.spec.worker_groups["big"].n_workers == 3 and again.spec.worker_groups["big"].env == {"B": "2"}
    attached = DaskCluster.from_name("c12", namespace, kubeconfig=kubeconfig, connect=False)
    assert attached.spec.worker_groups["big"].n_workers == 3
    with pytest.raises(ConfigError, match="cluster c12 has no worker group 'small' \\(its groups: big\\)"):
        attached.scale(1, group="small")
    # 3 Deployments, the Service, the account, Role, RoleBinding and the NetworkPolicy (no controller
    # runs on kwok: none adopted).
    assert delete_dask_cluster("c12", namespace, kubeconfig=kubeconfig) == 9  # with its TLS Secret


def test_the_clusters_own_credentials_go_to_a_client_and_a_plain_cluster_has_none(
    kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from buildtools.cli import app

    start("cr", namespace=namespace, image=IMAGE, n_workers=0, tls=True, timeout=120, kubeconfig=kubeconfig)
    argv = ["credentials", "cr", "-n", namespace, "--kubeconfig", kubeconfig, "--out", str(tmp_path / "cr")]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    secret = Kube.connect(kubeconfig).get(SECRET, "cr-tls", namespace)
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    written = from_secret(secret)
    assert (tmp_path / "cr" / "tls.key").read_text() == written.key
    assert (tmp_path / "cr" / "tls.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cr" / "ca.crt").read_text() == written.ca
    # The Secret's material is in no other object: not in the stored spec, not in the Deployments.
    text = json.dumps([o for o in Kube.connect(kubeconfig).list(DEPLOYMENT, namespace, labels.label_selector("cr"))])
    assert "PRIVATE KEY" not in text and written.certificate.splitlines()[1] not in text

    start("plain", namespace=namespace, image=IMAGE, n_workers=0, tls=False, timeout=120, kubeconfig=kubeconfig)
    assert "Secret" not in objects_of(kubeconfig, namespace, "plain")
    with pytest.raises(ConfigError, match="runs without TLS"):
        of_cluster_named(Kube.connect(kubeconfig), "plain", namespace)


KILLED_STARTER = """
import sys
from buildtools.cluster.deploy import start_dask_cluster
def progress(line):
    print(line, flush=True)
start_dask_cluster("killed", namespace=sys.argv[1], image=sys.argv[2], kubeconfig=sys.argv[3], n_workers=2,
                   connect=False, timeout=120, on_progress=progress)
"""


def test_a_start_killed_half_way_leaves_what_a_delete_from_another_process_removes_the_secret_included(
    kubeconfig: str, namespace: str
) -> None:
    # A default (TLS) start, killed once its Secret and some objects, not all, are applied.
    seen = killed_at(KILLED_STARTER, [namespace, IMAGE, kubeconfig], lambda line: line.startswith("applying Service"))
    assert any(line.startswith("applying Secret") for line in seen), seen
    left = objects_of(kubeconfig, namespace, "killed")
    assert left["Secret"] == ["killed-tls"] and "Deployment" not in left, left
    began = time.monotonic()
    deleter = subprocess.run(
        [sys.executable, "-m", "buildtools", "down", "killed", "-n", namespace, "--kubeconfig", kubeconfig],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert deleter.returncode == 0, deleter.stderr
    assert objects_of(kubeconfig, namespace, "killed") == {}
    print(f"\nkilled start: `buildtools down` from a new process left nothing in {time.monotonic() - began:.1f} s")
