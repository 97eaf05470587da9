"""Start and delete Dask clusters on Kubernetes, and prepull images onto the nodes.

specs (validated values) -> render (manifests) -> kube (server-side apply) -> waits.
Bad input fails before anything is created; a failed start removes what it created
(unless keep_on_failure); every wait has one deadline and names what it waits for.
The cluster's fields are ClusterSpec's (one schema with the spec file); the arguments here
are about the deploy itself: where, how long, what to report, and the handle it returns
(handle.DaskCluster, which runs the deploy in its start and may delete the cluster when closed).
The spec a cluster was applied with is stored on its scheduler Deployment: a re-apply changes
only the fields given, and DaskCluster.from_name finds the cluster's fields again (lifecycle.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from buildtools.cluster import preflight
from buildtools.cluster.controller import network_policy_name
from buildtools.cluster.credentials import new_secret
from buildtools.cluster.handle import DaskCluster, HandleOptions
from buildtools.cluster.kinds import DAEMONSET, NETWORK_POLICY, POD
from buildtools.cluster.kube import Kube
from buildtools.cluster.lifecycle import (
    Workload,
    delete_dask_cluster,
    pod_selector,
    stored_spec,
    wait_cluster,
    wait_rollout,
)
from buildtools.cluster.render import planned_objects, render_prepuller
from buildtools.cluster.spec_parts import SpecModel
from buildtools.cluster.specs import ClusterSpec, PrepullSpec, cluster_spec
from buildtools.cluster.waits import (
    Deadline,
    Progress,
    pod_is_ready,
    quiet,
)
from buildtools.errors import (
    ConfigError,
    ForbiddenError,
    MinimalDaskError,
    UnschedulableError,
    WaitTimeout,
)

__all__ = ["DaskCluster", "delete_dask_cluster", "prepull_images", "start_dask_cluster"]

DEFAULT_TIMEOUT = 300.0
CLEANUP_TIMEOUT = 60.0


def check_namespace(kube: Kube, namespace: str) -> None:
    try:
        exists = kube.namespace_exists(namespace)
    except ForbiddenError:
        return  # a namespaced Role cannot read Namespaces; the first apply will say it
    if not exists:
        raise ConfigError(f"namespace {namespace!r} does not exist")


def given_fields(spec: SpecModel | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the caller gave: a model's explicitly set ones, a mapping's keys, then `fields`."""
    if isinstance(spec, SpecModel):
        return {key: getattr(spec, key) for key in spec.model_fields_set} | dict(fields)
    return dict(spec or {}) | dict(fields)


def reapplied_fields(running: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A re-apply's fields: the running cluster's, the given ones over them; a worker group given
    without n_workers keeps its running count, as the default group does."""
    running_groups = running.get("worker_groups") or {}
    groups = {}
    for name, group in (given.get("worker_groups") or {}).items():
        fields = given_fields(group, {})
        if "n_workers" not in fields and "n_workers" in running_groups.get(name, {}):
            fields["n_workers"] = running_groups[name]["n_workers"]
        groups[name] = fields
    return {**running, **given} | ({"worker_groups": groups} if "worker_groups" in given else {})


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
    **fields: Any,
) -> DaskCluster:
    """Create a Dask cluster, or update a running one, and return its handle.

    The cluster is `spec` (a ClusterSpec or a spec file's mapping) with `name` and `fields`
    overriding it. A cluster that already runs changes only in the fields given here: the
    others keep their applied values, and its workers their current number (server-side
    apply; the Service is never recreated). `timeout` bounds the whole start in one deadline:
    the checks before anything is created (permissions, a server-side dry run), the prepull, the
    rollout and the first answer of the scheduler.

    Among `fields`, those of handle.HandleOptions (connect, check_python, shutdown_on_close,
    security, asynchronous) are the handle's: it connects to the scheduler (unless
    `connect=False` or `wait=False`) and checks that its Python minor is this client's (unless
    `check_python=False`). Closing it deletes the cluster only if this call created it, unless
    `shutdown_on_close` says otherwise.
    """
    options = HandleOptions.take(fields)
    deadline = Deadline.after(timeout)
    given = given_fields(spec, fields) | ({"name": name} if name is not None else {})
    first = cluster_spec(given)  # bad input fails here, before anything talks to Kubernetes
    if first.exposed and not first.tls:
        warnings.warn(
            f"cluster {first.name}: the scheduler is exposed outside the cluster ({first.service_type}) "
            "WITHOUT TLS (tls=False): anyone who reaches it can run code on your workers",
            stacklevel=2,
        )
    progress = on_progress or quiet
    kube = Kube.connect(kubeconfig, context)
    check_namespace(kube, first.namespace)
    existing = stored_spec(kube, first.name, first.namespace)
    resolved = first if existing is None else cluster_spec(reapplied_fields(existing, given))

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

    options = replace(options, connect=options.connect and wait)
    return DaskCluster(
        resolved, kube, options, deploy=deploy, created=existing is None, connect_timeout=deadline, progress=progress
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
    preflight.check_permissions(kube, spec.namespace, prepull)  # before the Secret's lookup
    if (secret := new_secret(kube, spec)) is not None:
        objects.insert(1 if prepull else 0, secret)  # before the pods that mount it; after the prepuller
    preflight.dry_run(kube, objects, deadline, progress)
    try:
        if prepull:
            prepuller, *objects = objects
            roll_out_prepuller(kube, prepuller, deadline, relaxed=True, progress=progress)
        for obj in objects:
            progress(f"applying {obj['kind']} {spec.namespace}/{obj['metadata']['name']}")
            kube.apply(obj)
        if not created and not spec.network_policy:
            # Turned off on a running cluster: an apply never removes what is no longer rendered.
            kube.delete(NETWORK_POLICY, network_policy_name(spec.name), spec.namespace)
        if wait:
            wait_cluster(kube, objects, deadline, progress)
    except BaseException as failure:
        if created and not keep_on_failure:
            progress(f"start failed: removing what was created for cluster {spec.name}")
            try:
                delete_dask_cluster(spec.name, spec.namespace, timeout=CLEANUP_TIMEOUT, kube=kube, on_progress=progress)
            except MinimalDaskError as cleanup:
                failure.add_note(f"cleanup of cluster {spec.name} failed too: {cleanup}")
        raise


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
        kube or Kube.connect(kubeconfig, context), daemonset, timeout, relaxed, on_progress or quiet
    )


def roll_out_prepuller(
    kube: Kube, daemonset: dict[str, Any], timeout: float | Deadline, relaxed: bool, progress: Progress
) -> PrepullResult:
    """Apply a rendered prepuller DaemonSet and wait for it (see prepull_images)."""
    kube.apply(daemonset)
    workload = Workload.of(daemonset)
    try:
        wait_rollout(kube, workload, timeout, progress)
    except (WaitTimeout, UnschedulableError):  # the deadline passed (unschedulable pods say why)
        if not relaxed:
            raise
    status = (kube.get(DAEMONSET, workload.name, workload.namespace) or {}).get("status", {})
    pods = kube.list(POD, workload.namespace, pod_selector(daemonset))
    missing = sorted(p.get("spec", {}).get("nodeName") or p["metadata"]["name"] for p in pods if not pod_is_ready(p))
    if missing:
        progress(f"prepull: continuing without {', '.join(missing)} (not ready by the deadline)")
    return PrepullResult(status.get("numberReady", 0), status.get("desiredNumberScheduled", 0), missing)
