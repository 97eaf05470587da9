"""A cluster's life on Kubernetes once its objects are known: waiting for its rollout, reading
the spec it was applied with back, deleting it. Used by deploy (which creates clusters) and by
handle (whose DaskCluster waits for, attaches to and deletes one), so neither imports the other.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from buildtools.cluster import controller, labels
from buildtools.cluster.kinds import (
    DAEMONSET,
    DEPLOYMENT,
    JOB,
    NETWORK_POLICY,
    POD,
    ROLE,
    ROLE_BINDING,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
    Kind,
)
from buildtools.cluster.kube import Kube
from buildtools.cluster.kubetypes import DnsLabel, validate
from buildtools.cluster.waits import (
    Deadline,
    Progress,
    pod_failure,
    quiet,
    replica_failure,
    rollout_state,
    unschedulable,
    wait_until,
    warnings_about,
)
from buildtools.errors import DeployError

# Every kind a cluster creates, found again by the cluster's label when it is deleted; their
# pods go with them (foreground deletion), and the wait for deletion watches those too.
CLUSTER_KINDS = (JOB, DEPLOYMENT, DAEMONSET, SERVICE, SERVICE_ACCOUNT, ROLE, ROLE_BINDING, NETWORK_POLICY, SECRET)
WATCHED_KINDS = (*CLUSTER_KINDS, POD)
# A rollout's or a deletion's state is one small object (or a list of one) polled this often;
# the pods of a rollout (hundreds) are listed for failures less often.
POLL_INTERVAL = 0.2
POD_CHECK_INTERVAL = 2.0


@dataclass(frozen=True)
class Workload:
    """A Deployment or DaemonSet to wait for. Its pods are found by the selector the object
    itself carries (read from the server), so a name and a selector never disagree."""

    kind: Kind
    name: str
    namespace: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Workload:
        return cls(Kind.of(obj), obj["metadata"]["name"], obj["metadata"]["namespace"])

    @classmethod
    def component(cls, cluster: str, namespace: str, component: str) -> Workload:
        """A cluster's scheduler or worker Deployment."""
        return cls(DEPLOYMENT, labels.component_name(cluster, component), namespace)


def pod_selector(obj: dict[str, Any]) -> str:
    """The label selector of a Deployment's or DaemonSet's own pods, from the object's spec."""
    return controller.pod_selector(obj["spec"]["selector"]["matchLabels"])


def check_pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods of a component; raises at once on a failure that waiting cannot heal."""
    pods = kube.list(POD, namespace, selector)

    def last_lines(pod: str, container: str) -> str:
        try:
            return kube.pod_log(namespace, pod, container, tail=20).rstrip()
        except DeployError:
            return ""

    for pod in pods:
        if failure := pod_failure(pod, last_lines):
            raise failure
    return pods


def wait_rollout(kube: Kube, workload: Workload, timeout: float | Deadline, progress: Progress) -> str:
    """Wait until a Deployment or DaemonSet is rolled out, failing fast on broken pods."""
    w = workload
    pods_checked = -POD_CHECK_INTERVAL
    selector = ""  # the object's, once it has been read

    def check() -> tuple[bool, str]:
        nonlocal pods_checked, selector
        obj = kube.get(w.kind, w.name, w.namespace)
        if obj is None:
            return False, "not found"
        selector = pod_selector(obj)
        if failure := replica_failure(obj):
            raise failure
        done, state = rollout_state(obj)
        if not done and time.monotonic() - pods_checked >= POD_CHECK_INTERVAL:
            pods_checked = time.monotonic()
            check_pods(kube, w.namespace, selector)
        return done, state

    def on_timeout(state: str) -> Exception | None:
        for pod in kube.list(POD, w.namespace, selector) if selector else ():
            if problem := unschedulable(pod):
                return problem
        return None

    def explain() -> str:
        try:
            return warnings_about(kube.warning_events(w.namespace), w.name)
        except DeployError:  # e.g. no permission to list events: the timeout says the rest
            return ""

    what = f"{w.kind.name} {w.namespace}/{w.name}"
    return wait_until(check, what, timeout, progress, POLL_INTERVAL, on_timeout=on_timeout, explain=explain)


def wait_cluster(kube: Kube, objects: list[dict[str, Any]], timeout: float | Deadline, progress: Progress) -> None:
    """Until the Deployments among a cluster's objects (the scheduler first, then each worker
    group) are rolled out, within one deadline."""
    deadline = Deadline.of(timeout)
    for obj in objects:
        if Kind.of(obj) == DEPLOYMENT:
            wait_rollout(kube, Workload.of(obj), deadline, progress)


def stored_spec(kube: Kube, name: str, namespace: str) -> dict[str, Any] | None:
    """The fields of a running cluster (None when there is none): the spec it was applied with,
    or, for one applied otherwise (kubectl, GitOps), what its objects show; n_workers (each
    group's too) is its worker Deployment's replicas."""
    scheduler = kube.get(DEPLOYMENT, labels.component_name(name, "scheduler"), namespace)
    if scheduler is None:
        return None
    annotation = (scheduler["metadata"].get("annotations") or {}).get(labels.SPEC_ANNOTATION)
    if annotation:
        fields: dict[str, Any] = json.loads(annotation)
    else:
        service = kube.get(SERVICE, labels.scheduler_service_name(name), namespace) or {}
        image = scheduler["spec"]["template"]["spec"]["containers"][0]["image"]
        fields = {"name": name, "namespace": namespace, "image": image}
        if service_type := service.get("spec", {}).get("type"):
            fields["service_type"] = service_type
        volumes = {v.get("name"): v for v in scheduler["spec"]["template"]["spec"].get("volumes") or []}
        secret = (volumes.get("tls", {}).get("secret") or {}).get("secretName")
        fields["tls"] = secret is not None
        if secret is not None and secret != controller.tls_secret_name(name):
            fields["tls_secret"] = secret
    worker = kube.get(DEPLOYMENT, labels.worker_deployment_name(name), namespace)
    if worker is not None:
        fields["n_workers"] = worker["spec"].get("replicas", 0)
    for group, group_fields in (fields.get("worker_groups") or {}).items():
        if found := kube.get(DEPLOYMENT, labels.worker_deployment_name(name, group), namespace):
            group_fields["n_workers"] = found["spec"].get("replicas", 0)
    return fields


def require_stored_spec(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    """stored_spec, for a cluster that must exist."""
    fields = stored_spec(kube, name, namespace)
    if fields is None:
        raise DeployError(f"there is no Dask cluster {namespace}/{name} (no Deployment {name}-scheduler)")
    return fields


def delete_dask_cluster(
    name: str,
    namespace: str = "default",
    wait: bool = True,
    timeout: float = 120.0,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    kube: Kube | None = None,
    on_progress: Progress | None = None,
) -> int:
    """Delete every object that carries the cluster's label; idempotent. Returns how many."""
    validate(DnsLabel, "name", name)
    kube = kube or Kube.connect(kubeconfig, context)
    selector = labels.label_selector(name)
    deleted = 0
    for kind in CLUSTER_KINDS:
        for obj in kube.list(kind, namespace, selector):
            kube.delete(kind, obj["metadata"]["name"], namespace)
            deleted += 1
    if wait:

        def gone() -> tuple[bool, str]:
            left = [kind.name for kind in WATCHED_KINDS if kube.any(kind, namespace, selector)]
            return not left, f"{', '.join(left) or 'nothing'} left"

        wait_until(gone, f"deletion of cluster {namespace}/{name}", timeout, on_progress or quiet, POLL_INTERVAL)
    return deleted
