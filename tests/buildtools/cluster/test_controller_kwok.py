"""The controller's Kubernetes side against a REAL API server (kwok fake nodes, a real
controller-manager and so a real garbage collector): its REST client, with the token of the
scheduler's own ServiceAccount, under the Role that start_dask_cluster created for it.
Its decisions with a real scheduler are in test_controller.py; the whole loop in a scheduler
pod in tests/e2e."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import urllib.error
from typing import Any

import pytest

from buildtools.cluster import controller as c
from buildtools.cluster import labels
from buildtools.cluster.deploy import start_dask_cluster
from buildtools.cluster.kinds import (
    DEPLOYMENT,
    NETWORK_POLICY,
    POD,
    REPLICASET,
    ROLE,
    ROLE_BINDING,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
)
from buildtools.cluster.kube import Kube, load_api_client
from buildtools.cluster.waits import wait_until
from buildtools.settings import REPO_ROOT
from tests.helpers.kwok_cluster import service_account_token

pytestmark = pytest.mark.k8s

IMAGE = "127.0.0.1:5000/minimaldask/debian:2026.8.0-py3.13"
KINDS = [DEPLOYMENT, REPLICASET, POD, SERVICE, SERVICE_ACCOUNT, ROLE, ROLE_BINDING, NETWORK_POLICY, SECRET]


def start(kubeconfig: str, namespace: str, name: str, **fields: Any) -> None:
    start_dask_cluster(
        name, namespace=namespace, image=IMAGE, connect=False, timeout=120, kubeconfig=kubeconfig, **fields
    )


def as_scheduler(kubeconfig: str, namespace: str, cluster: str) -> c.KubeREST:
    """The controller's client, as the scheduler pod of `cluster` has it (its ServiceAccount's token)."""
    configuration = load_api_client(kubeconfig).configuration
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if not configuration.verify_ssl:  # the test control plane's own loopback address
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    token = service_account_token(kubeconfig, namespace, c.root_name(cluster))
    return c.KubeREST(configuration.host, namespace, lambda: token, context)


def count_objects(kubeconfig: str, namespace: str, cluster: str) -> dict[str, int]:
    kube = Kube.connect(kubeconfig)
    found = {kind.name: len(kube.list(kind, namespace, labels.label_selector(cluster))) for kind in KINDS}
    return {kind: n for kind, n in found.items() if n}


def adopt(api: c.KubeREST, cluster: str) -> int:
    loop = c.Controller(None, api, cluster)  # type: ignore[arg-type]  # adoption asks no scheduler
    root = api.get("Deployment", c.root_name(cluster))
    assert root is not None
    workers = api.list("Deployment", f"{c.CLUSTER_LABEL}={cluster},{c.COMPONENT_LABEL}=worker")
    return asyncio.run(loop.adopt(root, workers))


def wait_gone(kubeconfig: str, namespace: str, cluster: str) -> None:
    def gone() -> tuple[bool, str]:
        left = count_objects(kubeconfig, namespace, cluster)
        return not left, f"left: {left}"

    wait_until(gone, f"garbage collection of cluster {cluster}", 120, lambda _: None, 0.5)


def kubectl(kubeconfig: str, *args: str) -> None:
    bin_dir = subprocess.run(
        ["sh", str(REPO_ROOT / "env" / "k8s-build.sh"), "--bin-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([f"{bin_dir}/kubectl", "--kubeconfig", kubeconfig, *args], check=True, capture_output=True)


def test_kubectl_delete_of_the_root_removes_every_object_of_an_adopted_cluster(kubeconfig: str, namespace: str) -> None:
    start(kubeconfig, namespace, "gc", n_workers=2, worker_groups={"big": {"n_workers": 1}}, tls=True)
    before = count_objects(kubeconfig, namespace, "gc")
    assert before == {
        "Deployment": 3,
        "ReplicaSet": 3,
        "Pod": 4,
        "Service": 1,
        "ServiceAccount": 1,
        "Role": 1,
        "RoleBinding": 1,
        "NetworkPolicy": 1,
        "Secret": 1,
    }
    api = as_scheduler(kubeconfig, namespace, "gc")
    # The two worker Deployments (the default group's and big's), the Service, the account, its Role and
    # binding, the NetworkPolicy and the TLS Secret.
    assert adopt(api, "gc") == 8
    assert adopt(api, "gc") == 0
    kubectl(kubeconfig, "delete", "deployment", "gc-scheduler", "--namespace", namespace, "--wait=false")
    wait_gone(kubeconfig, namespace, "gc")


def test_the_scheduler_scales_its_workers_and_deletes_its_cluster_with_its_own_token(
    kubeconfig: str, namespace: str
) -> None:
    start(kubeconfig, namespace, "own", n_workers=1, idle_timeout=60)
    api = as_scheduler(kubeconfig, namespace, "own")
    adopt(api, "own")
    api.patch("Deployment", "own-worker", {"spec": {"replicas": 3}})
    (pod, *_) = api.list("Pod", labels.label_selector("own", "worker"))
    api.patch("Pod", pod["metadata"]["name"], {"metadata": {"annotations": {c.DELETION_COST: c.RETIRED_COST}}})
    root = api.get("Deployment", "own-scheduler")
    assert root is not None
    assert root["metadata"]["annotations"][c.IDLE_TIMEOUT_ANNOTATION] == "60"
    assert (api.get("Deployment", "own-worker") or {})["spec"]["replicas"] == 3
    api.delete_tree("Deployment", "own-scheduler")  # what the controller does at the idle timeout
    wait_gone(kubeconfig, namespace, "own")


def access_review(api: c.KubeREST, verb: str, name: str) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": api.namespace,
                "group": "apps",
                "resource": "deployments",
                "verb": verb,
                "name": name,
            }
        },
    }
    answer = api.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
    return bool(answer["status"]["allowed"])


def test_the_scheduler_account_cannot_touch_another_clusters_deployments(kubeconfig: str, namespace: str) -> None:
    start(kubeconfig, namespace, "mine", n_workers=1, worker_groups={"big": {"n_workers": 0}})
    start(kubeconfig, namespace, "theirs", n_workers=1, worker_groups={"big": {"n_workers": 0}})
    api = as_scheduler(kubeconfig, namespace, "mine")
    assert access_review(api, "patch", "mine-worker") and access_review(api, "delete", "mine-scheduler")
    assert access_review(api, "patch", "mine-worker-big")
    for verb, name in [
        ("patch", "theirs-worker"),
        ("patch", "theirs-worker-big"),  # a group of another cluster, by the name a group of ours could have
        ("delete", "theirs-scheduler"),
        ("delete", "mine-worker"),
    ]:
        assert not access_review(api, verb, name), (verb, name)
    with pytest.raises(urllib.error.HTTPError) as refused:
        api.patch("Deployment", "theirs-worker", {"spec": {"replicas": 0}})
    assert refused.value.code == 403
    assert (Kube.connect(kubeconfig).get(DEPLOYMENT, "theirs-worker", namespace) or {})["spec"]["replicas"] == 1
