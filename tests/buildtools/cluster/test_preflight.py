"""The preflight's pure parts: which permissions the deploy needs (the documented Role's), and
what is dry-run (every object, and a pod of each workload's template). The checks against a
real API server are in test_deploy.py."""

from __future__ import annotations

import kubernetes_validate

from buildtools.cluster import preflight
from buildtools.cluster.render import render_cluster
from buildtools.cluster.specs import ClusterSpec

IMAGE = "registry.example:5000/minimaldask/debian:2026.8.0"
SPEC = ClusterSpec(
    name="demo",
    namespace="dask",
    image=IMAGE,
    image_pull_secrets=["regcred"],
    placement={"worker": {"node_selector": {"pool": "compute"}}},
)


def test_the_needed_permissions_are_the_roles() -> None:
    needed = preflight.needed_permissions("dask", prepull=False)
    assert ("apps", "deployments", "patch") in needed
    assert ("", "pods", "create") in needed  # the dry run of a pod
    assert ("", "pods/portforward", "create") in needed
    # The cluster's NetworkPolicy: applied (and dry-run), then listed and deleted with the cluster.
    policy = {verb for group, resource, verb in needed if (group, resource) == ("networking.k8s.io", "networkpolicies")}
    assert policy == {"get", "list", "create", "patch", "delete"}
    # A TLS cluster's own Secret: checked whether it exists, created, read by a handle, deleted.
    secrets = {verb for group, resource, verb in needed if (group, resource) == ("", "secrets")}
    assert secrets == {"get", "list", "create", "patch", "delete"}
    assert not [p for p in needed if p[1] == "daemonsets"]
    with_prepull = preflight.needed_permissions("dask", prepull=True)
    assert set(with_prepull) - set(needed) == {
        ("apps", "daemonsets", v) for v in ("get", "list", "watch", "create", "patch", "delete")
    }
    assert len(needed) == len(set(needed))


def test_permissions_in_kubectls_words() -> None:
    assert preflight.describe(("apps", "deployments", "delete")) == "delete deployments.apps"
    assert preflight.describe(("", "pods/log", "get")) == "get pods/log"


def test_a_dry_run_pod_is_the_template_as_its_controller_would_create_it() -> None:
    worker = render_cluster(SPEC)[-1]
    pod = preflight.template_pod(worker)
    assert pod["metadata"]["name"] == "demo-worker-dry-run"
    assert pod["metadata"]["namespace"] == "dask"
    assert pod["metadata"]["labels"] == worker["spec"]["template"]["metadata"]["labels"]
    assert pod["spec"] == worker["spec"]["template"]["spec"]
    assert kubernetes_validate.validate(pod, "1.33", strict=True) == "1.33"
