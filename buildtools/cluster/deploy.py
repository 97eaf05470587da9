"""Start and delete Dask clusters on Kubernetes, and prepull images onto the nodes.

specs (validated values) -> render (manifests) -> kube (server-side apply) -> waits.
Bad input fails before anything is created; a failed start removes what it created
(unless keep_on_failure); every wait has one deadline and names what it waits for.
The cluster's fields are ClusterSpec's (one schema with the spec file); the arguments here
are about the deploy itself: where, how long, what to report, and the handle it returns
(handle.DaskCluster, which runs the deploy in its start and may delete the cluster when closed).
The spec a cluster was applied with is stored on its scheduler Deployment: a re-apply changes
only the fields given, and `attach` (DaskCluster.from_name) finds the cluster's fields again.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buildtools.cluster import labels, preflight
from buildtools.cluster.handle import DaskCluster
from buildtools.cluster.kube import Kube
from buildtools.cluster.kubetypes import DnsLabel, validate
from buildtools.cluster.render import planned_objects, render_prepuller
from buildtools.cluster.specs import ClusterSpec, PrepullSpec, cluster_spec
from buildtools.cluster.waits import (
    Deadline,
    Progress,
    pod_failure,
    pod_is_ready,
    replica_failure,
    rollout_state,
    unschedulable,
    wait_until,
    warnings_about,
)
from buildtools.errors import (
    ConfigError,
    DeployError,
    ForbiddenError,
    MinimalDaskError,
    UnschedulableError,
    WaitTimeout,
)

__all__ = ["DaskCluster", "attach", "delete_dask_cluster", "prepull_images", "start_dask_cluster"]

# Every kind a cluster creates, found again by the cluster's label when it is deleted; their
# pods go with them (foreground deletion), and the wait for deletion watches those too.
CLUSTER_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
)
WATCHED_KINDS = (*CLUSTER_KINDS, ("v1", "Pod"))
DEFAULT_TIMEOUT = 300.0
CLEANUP_TIMEOUT = 60.0
# A rollout's or a deletion's state is one small object (or a list of one) polled this often;
# the pods of a rollout (hundreds) are listed for failures less often.
POLL_INTERVAL = 0.2
POD_CHECK_INTERVAL = 2.0


def _quiet(_: str) -> None:
    pass


def _check_pods(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods of a component; raises at once on a failure that waiting cannot heal."""
    pods = kube.list("v1", "Pod", namespace, selector)

    def last_lines(pod: str, container: str) -> str:
        try:
            return kube.pod_log(namespace, pod, container, tail=20).rstrip()
        except DeployError:
            return ""

    for pod in pods:
        if failure := pod_failure(pod, last_lines):
            raise failure
    return pods


def wait_rollout(
    kube: Kube,
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    selector: str,
    timeout: float | Deadline,
    progress: Progress,
) -> str:
    """Wait until a Deployment or DaemonSet is rolled out, failing fast on broken pods."""
    pods_checked = -POD_CHECK_INTERVAL

    def check() -> tuple[bool, str]:
        nonlocal pods_checked
        obj = kube.get(api_version, kind, name, namespace)
        if obj is None:
            return False, "not found"
        if failure := replica_failure(obj):
            raise failure
        done, state = rollout_state(obj)
        if not done and time.monotonic() - pods_checked >= POD_CHECK_INTERVAL:
            pods_checked = time.monotonic()
            _check_pods(kube, namespace, selector)
        return done, state

    def on_timeout(state: str) -> Exception | None:
        for pod in kube.list("v1", "Pod", namespace, selector):
            if problem := unschedulable(pod):
                return problem
        return None

    def explain() -> str:
        try:
            return warnings_about(kube.warning_events(namespace), name)
        except DeployError:  # e.g. no permission to list events: the timeout says the rest
            return ""

    what = f"{kind} {namespace}/{name}"
    return wait_until(check, what, timeout, progress, POLL_INTERVAL, on_timeout=on_timeout, explain=explain)


def _check_namespace(kube: Kube, namespace: str) -> None:
    try:
        exists = kube.namespace_exists(namespace)
    except ForbiddenError:
        return  # a namespaced Role cannot read Namespaces; the first apply will say it
    if not exists:
        raise ConfigError(f"namespace {namespace!r} does not exist")


def given_fields(spec: ClusterSpec | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the caller gave: a ClusterSpec's explicitly set ones, a mapping's keys, then `fields`."""
    if isinstance(spec, ClusterSpec):
        return {key: getattr(spec, key) for key in spec.model_fields_set} | dict(fields)
    return dict(spec or {}) | dict(fields)


def stored_spec(kube: Kube, name: str, namespace: str) -> dict[str, Any] | None:
    """The fields of a running cluster (None when there is none): the spec it was applied with,
    or, for one applied otherwise (kubectl, GitOps), what its objects show; n_workers is the
    worker Deployment's replicas."""
    scheduler = kube.get("apps/v1", "Deployment", labels.component_name(name, "scheduler"), namespace)
    if scheduler is None:
        return None
    annotation = (scheduler["metadata"].get("annotations") or {}).get(labels.SPEC_ANNOTATION)
    if annotation:
        fields: dict[str, Any] = json.loads(annotation)
    else:
        service = kube.get("v1", "Service", labels.scheduler_service_name(name), namespace) or {}
        image = scheduler["spec"]["template"]["spec"]["containers"][0]["image"]
        fields = {"name": name, "namespace": namespace, "image": image}
        if service_type := service.get("spec", {}).get("type"):
            fields["service_type"] = service_type
    worker = kube.get("apps/v1", "Deployment", labels.component_name(name, "worker"), namespace)
    if worker is not None:
        fields["n_workers"] = worker["spec"].get("replicas", 0)
    return fields


def start_dask_cluster(
    name: str | None = None,
    *,
    spec: ClusterSpec | Mapping[str, Any] | None = None,
    prepull: bool = False,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    keep_on_failure: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    on_progress: Progress | None = None,
    connect: bool = True,
    check_python: bool = True,
    shutdown_on_close: bool | None = None,
    security: Any = None,
    asynchronous: bool = False,
    **fields: Any,
) -> DaskCluster:
    """Create a Dask cluster, or update a running one, and return its handle.

    The cluster is `spec` (a ClusterSpec or a spec file's mapping) with `name` and `fields`
    overriding it. A cluster that already runs changes only in the fields given here: the
    others keep their applied values, and its workers their current number (server-side
    apply; the Service is never recreated). `timeout` bounds the whole start in one deadline:
    the checks before anything is created (permissions, a server-side dry run), the prepull, the
    rollout and the first answer of the scheduler.

    The handle connects to the scheduler (unless `connect=False` or `wait=False`) and checks
    that its Python minor is this client's (unless `check_python=False`). Closing it deletes
    the cluster only if this call created it, unless `shutdown_on_close` says otherwise.
    """
    deadline = Deadline.after(timeout)
    given = given_fields(spec, fields) | ({"name": name} if name is not None else {})
    first = cluster_spec(given)  # bad input fails here, before anything talks to Kubernetes
    if first.service_type != "ClusterIP" and not first.use_tls:
        warnings.warn(
            f"cluster {first.name}: the scheduler is exposed outside the cluster ({first.service_type}) "
            "WITHOUT TLS: anyone who reaches it can run code on your workers; pass tls_secret=...",
            stacklevel=2,
        )
    progress = on_progress or _quiet
    kube = Kube.connect(kubeconfig, context)
    _check_namespace(kube, first.namespace)
    existing = stored_spec(kube, first.name, first.namespace)
    resolved = first if existing is None else cluster_spec(existing | given)

    def deploy() -> None:
        _deploy(
            kube,
            resolved,
            created=existing is None,
            prepull=prepull,
            wait=wait,
            deadline=deadline,
            keep_on_failure=keep_on_failure,
            progress=progress,
        )

    return DaskCluster(
        resolved,
        kube,
        deploy=deploy,
        shutdown_on_close=existing is None if shutdown_on_close is None else shutdown_on_close,
        connect=connect and wait,
        check_python=check_python,
        connect_timeout=deadline,
        security=security,
        progress=progress,
        asynchronous=asynchronous,
    )


def _deploy(
    kube: Kube,
    spec: ClusterSpec,
    *,
    created: bool,
    prepull: bool,
    wait: bool,
    deadline: Deadline,
    keep_on_failure: bool,
    progress: Progress,
) -> None:
    """Apply the cluster's objects and wait for their rollout; a failed start of a new cluster
    removes what it created (unless keep_on_failure). Permissions and a server-side dry run of
    exactly the objects applied come first: a refusal fails before anything exists."""
    objects = planned_objects(spec, prepull)
    preflight.preflight(kube, spec.namespace, objects, prepull, deadline, progress)
    try:
        if prepull:
            prepuller, *objects = objects
            roll_out_prepuller(kube, prepuller, deadline, relaxed=True, progress=progress)
        for obj in objects:
            progress(f"applying {obj['kind']} {spec.namespace}/{obj['metadata']['name']}")
            kube.apply(obj)
        if wait:
            wait_cluster(kube, spec.name, spec.namespace, deadline, progress)
    except BaseException as failure:
        if created and not keep_on_failure:
            progress(f"start failed: removing what was created for cluster {spec.name}")
            try:
                delete_dask_cluster(spec.name, spec.namespace, timeout=CLEANUP_TIMEOUT, kube=kube, on_progress=progress)
            except MinimalDaskError as cleanup:
                failure.add_note(f"cleanup of cluster {spec.name} failed too: {cleanup}")
        raise


def wait_cluster(kube: Kube, name: str, namespace: str, timeout: float | Deadline, progress: Progress) -> None:
    """Until the scheduler and then the workers are rolled out, within one deadline."""
    deadline = Deadline.of(timeout)
    for component in ("scheduler", "worker"):
        wait_rollout(
            kube,
            "apps/v1",
            "Deployment",
            labels.component_name(name, component),
            namespace,
            labels.label_selector(name, component),
            deadline,
            progress,
        )


def attach(
    name: str,
    namespace: str = "default",
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    on_progress: Progress | None = None,
    connect: bool = True,
    check_python: bool = True,
    shutdown_on_close: bool = False,
    security: Any = None,
    asynchronous: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> DaskCluster:
    """The handle of a running cluster (DaskCluster.from_name); nothing is applied or changed."""
    validate(DnsLabel, "name", name)
    kube = Kube.connect(kubeconfig, context)
    fields = stored_spec(kube, name, namespace)
    if fields is None:
        raise DeployError(f"there is no Dask cluster {namespace}/{name} (no Deployment {name}-scheduler)")
    return DaskCluster(
        cluster_spec(fields),
        kube,
        shutdown_on_close=shutdown_on_close,
        connect=connect,
        check_python=check_python,
        connect_timeout=timeout,
        security=security,
        progress=on_progress or _quiet,
        asynchronous=asynchronous,
    )


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
    for api_version, kind in CLUSTER_KINDS:
        for obj in kube.list(api_version, kind, namespace, selector):
            kube.delete(api_version, kind, obj["metadata"]["name"], namespace)
            deleted += 1
    if wait:

        def gone() -> tuple[bool, str]:
            left = [kind for version, kind in WATCHED_KINDS if kube.any(version, kind, namespace, selector)]
            return not left, f"{', '.join(left) or 'nothing'} left"

        wait_until(gone, f"deletion of cluster {namespace}/{name}", timeout, on_progress or _quiet, POLL_INTERVAL)
    return deleted


@dataclass(frozen=True)
class PrepullResult:
    ready: int
    desired: int
    missing_nodes: list[str]


def prepull_images(
    images: Sequence[str],
    namespace: str = "default",
    *,
    name: str = "minimaldask",
    tolerations: Sequence[Mapping[str, Any]] = (),
    node_selector: Mapping[str, str] | None = None,
    affinity: Mapping[str, Any] | None = None,
    priority_class: str | None = None,
    image_pull_secrets: Sequence[str] = (),
    pause_image: str | None = None,
    platform_uid: bool = False,
    timeout: float | Deadline = DEFAULT_TIMEOUT,
    relaxed: bool = True,
    kubeconfig: str | None = None,
    context: str | None = None,
    kube: Kube | None = None,
    on_progress: Progress | None = None,
) -> PrepullResult:
    """Apply the prepuller DaemonSet and wait until every schedulable node has the images.

    The DaemonSet stays: nodes added later pull the images as they join. With `relaxed`,
    nodes still not ready at the deadline (e.g. cordoned, full, or tainted without a
    matching toleration) are reported instead of failing; image pull errors always fail.
    """
    spec = PrepullSpec(
        name=name,
        namespace=namespace,
        images=images,
        tolerations=tolerations,
        node_selector=node_selector or {},
        affinity=affinity or {},
        priority_class=priority_class,
        image_pull_secrets=image_pull_secrets,
        platform_uid=platform_uid,
        **({"pause_image": pause_image} if pause_image else {}),
    )
    (daemonset,) = render_prepuller(spec)
    return roll_out_prepuller(
        kube or Kube.connect(kubeconfig, context), daemonset, timeout, relaxed, on_progress or _quiet
    )


def roll_out_prepuller(
    kube: Kube, daemonset: dict[str, Any], timeout: float | Deadline, relaxed: bool, progress: Progress
) -> PrepullResult:
    """Apply a rendered prepuller DaemonSet and wait for it (see prepull_images)."""
    kube.apply(daemonset)
    ds_name, namespace = daemonset["metadata"]["name"], daemonset["metadata"]["namespace"]
    selector = ",".join(f"{key}={value}" for key, value in sorted(daemonset["spec"]["selector"]["matchLabels"].items()))
    try:
        wait_rollout(kube, "apps/v1", "DaemonSet", ds_name, namespace, selector, timeout, progress)
    except (WaitTimeout, UnschedulableError):  # the deadline passed (unschedulable pods say why)
        if not relaxed:
            raise
    obj = kube.get("apps/v1", "DaemonSet", ds_name, namespace) or {}
    status = obj.get("status", {})
    pods = kube.list("v1", "Pod", namespace, selector)
    missing = sorted(p.get("spec", {}).get("nodeName") or p["metadata"]["name"] for p in pods if not pod_is_ready(p))
    if missing:
        progress(f"prepull: continuing without {', '.join(missing)} (not ready by the deadline)")
    return PrepullResult(status.get("numberReady", 0), status.get("desiredNumberScheduled", 0), missing)
