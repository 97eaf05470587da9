"""Start and delete Dask clusters on Kubernetes, and prepull images onto the nodes.

specs (validated values) -> render (manifests) -> kube (server-side apply) -> waits.
Bad input fails before anything is created; a failed start removes what it created
(unless keep_on_failure); every wait has one deadline and names what it waits for.
The cluster's fields are ClusterSpec's (one schema with the spec file); the arguments here
are about the deploy itself: where, how long, what to report. One module for the public
functions and the handle they return: start, delete and prepull share the rollout wait,
and the handle's close is a delete.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buildtools.cluster import contract, labels, preflight
from buildtools.cluster.kube import Kube, PortForward
from buildtools.cluster.kubetypes import Count, DnsLabel, validate
from buildtools.cluster.render import render_cluster, render_prepuller
from buildtools.cluster.specs import ClusterSpec, PrepullSpec, cluster_spec
from buildtools.cluster.waits import (
    Deadline,
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

Progress = Callable[[str], None]
# Every kind a cluster creates, found again by the cluster's label when it is deleted; their
# pods go with them (foreground deletion), and the wait for deletion watches those too.
CLUSTER_KINDS = (("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("v1", "Service"))
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


@dataclass
class DaskCluster:
    """A running Dask cluster: its address, dashboard, scaling, logs and removal."""

    spec: ClusterSpec
    kube: Kube = field(repr=False)
    progress: Progress = field(default=_quiet, repr=False)
    _forwards: dict[int, PortForward] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.spec.namespace

    def wait(self, timeout: float | Deadline = DEFAULT_TIMEOUT) -> None:
        """Until the scheduler and then the workers are rolled out, within one deadline."""
        deadline = Deadline.of(timeout)
        for component in ("scheduler", "worker"):
            wait_rollout(
                self.kube,
                "apps/v1",
                "Deployment",
                labels.component_name(self.name, component),
                self.namespace,
                labels.label_selector(self.name, component),
                deadline,
                self.progress,
            )

    def _service(self) -> dict[str, Any]:
        service = self.kube.get("v1", "Service", labels.scheduler_service_name(self.name), self.namespace)
        if service is None:
            raise DeployError(f"the scheduler Service of cluster {self.name} is gone")
        return service

    def _reach(self, port_name: str, port: int, scheme: str) -> str:
        """An address of the scheduler's port that works from where this process runs."""
        host = f"{labels.scheduler_service_name(self.name)}.{self.namespace}.svc"
        if self.kube.in_cluster:
            return f"{scheme}://{host}:{port}"
        service = self._service()
        service_port = next(p for p in service["spec"]["ports"] if p["name"] == port_name)
        if self.spec.service_type == "LoadBalancer":
            ingress = (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
            address = ingress.get("ip") or ingress.get("hostname")
            if not address:
                raise DeployError(f"the LoadBalancer of cluster {self.name} has no address yet")
            return f"{scheme}://{address}:{service_port['port']}"
        if self.spec.service_type == "NodePort":
            return f"{scheme}://{self._node_address()}:{service_port['nodePort']}"
        return f"{scheme}://127.0.0.1:{self._forward(port).local_port}"

    def _node_address(self) -> str:
        pods = self.kube.list("v1", "Pod", self.namespace, labels.label_selector(self.name, "scheduler"))
        for pod in pods:
            if host_ip := pod.get("status", {}).get("hostIP"):
                return str(host_ip)
        raise DeployError(f"the scheduler pod of cluster {self.name} has no node yet")

    def _ready_scheduler_pod(self) -> str:
        pods = self.kube.list("v1", "Pod", self.namespace, labels.label_selector(self.name, "scheduler"))
        ready = [p["metadata"]["name"] for p in pods if pod_is_ready(p)]
        if not ready:
            raise DeployError(f"no ready scheduler pod in cluster {self.namespace}/{self.name} to forward to")
        return str(ready[0])

    def _forward(self, port: int) -> PortForward:
        """A managed port-forward from 127.0.0.1 to a ready scheduler pod (re-picked per connection)."""
        if port not in self._forwards:
            self._ready_scheduler_pod()  # fail now, not at the first connection, when there is none
            self._forwards[port] = self.kube.port_forward(self.namespace, self._ready_scheduler_pod, port)
        return self._forwards[port]

    @property
    def scheduler_address(self) -> str:
        return self._reach(contract.COMM_PORT_NAME, contract.SCHEDULER_PORT, "tls" if self.spec.use_tls else "tcp")

    @property
    def dashboard_url(self) -> str:
        return self._reach(contract.DASHBOARD_PORT_NAME, contract.DASHBOARD_PORT, "http")

    def scale(self, n_workers: int, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> None:
        validate(Count, "n_workers", n_workers)
        name = labels.component_name(self.name, "worker")
        self.kube.patch_scale(name, self.namespace, n_workers)
        if wait:
            wait_rollout(
                self.kube,
                "apps/v1",
                "Deployment",
                name,
                self.namespace,
                labels.label_selector(self.name, "worker"),
                timeout,
                self.progress,
            )

    def logs(self, tail: int | None = None) -> dict[str, str]:
        pods = self.kube.list("v1", "Pod", self.namespace, labels.label_selector(self.name))
        return {
            p["metadata"]["name"]: self.kube.pod_log(self.namespace, p["metadata"]["name"], tail=tail) for p in pods
        }

    def client(self, **kwargs: Any) -> Any:
        from distributed import Client

        return Client(self.scheduler_address, **kwargs)

    def close(self, wait: bool = True) -> None:
        for forward in self._forwards.values():
            forward.close()
        self._forwards.clear()
        delete_dask_cluster(self.name, self.namespace, wait=wait, kube=self.kube)

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_namespace(kube: Kube, namespace: str) -> None:
    try:
        exists = kube.namespace_exists(namespace)
    except ForbiddenError:
        return  # a namespaced Role cannot read Namespaces; the first apply will say it
    if not exists:
        raise ConfigError(f"namespace {namespace!r} does not exist")


def start_dask_cluster(
    name: str | None = None,
    *,
    spec: ClusterSpec | None = None,
    prepull: bool = False,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    keep_on_failure: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    on_progress: Progress | None = None,
    **fields: Any,
) -> DaskCluster:
    """Create (or update in place) a Dask cluster and return its handle.

    The cluster is `spec`, or ClusterSpec(name=name, **fields), or `spec` with `name` and
    `fields` overriding its own: `start_dask_cluster(**yaml.safe_load(spec_file))` is the
    cluster the file describes. Re-running with the same name applies only what changed
    (server-side apply). `timeout` bounds the whole start, in one deadline: the checks before
    anything is created (permissions, a server-side dry run), the prepull and the rollout.
    """
    deadline = Deadline.after(timeout)
    spec = cluster_spec(spec, **({"name": name} if name is not None else {}), **fields)
    if spec.service_type != "ClusterIP" and not spec.use_tls:
        warnings.warn(
            f"cluster {spec.name}: the scheduler is exposed outside the cluster ({spec.service_type}) WITHOUT TLS: "
            "anyone who reaches it can run code on your workers; pass tls_secret=...",
            stacklevel=2,
        )
    progress = on_progress or _quiet
    kube = Kube.connect(kubeconfig, context)
    _check_namespace(kube, spec.namespace)
    preflight.preflight(kube, spec, prepull)
    scheduler = labels.component_name(spec.name, "scheduler")
    existed = kube.get("apps/v1", "Deployment", scheduler, spec.namespace) is not None
    cluster = DaskCluster(spec, kube, progress)
    try:
        if prepull:
            prepull_images(
                [spec.image],
                spec.namespace,
                **preflight.prepull_arguments(spec),
                platform_uid=spec.platform_uid,
                timeout=deadline,
                kube=kube,
                on_progress=progress,
            )
        for obj in render_cluster(spec):
            progress(f"applying {obj['kind']} {spec.namespace}/{obj['metadata']['name']}")
            kube.apply(obj)
        if wait:
            cluster.wait(deadline)
    except BaseException as failure:
        if not existed and not keep_on_failure:
            progress(f"start failed: removing what was created for cluster {spec.name}")
            try:
                delete_dask_cluster(spec.name, spec.namespace, timeout=CLEANUP_TIMEOUT, kube=kube, on_progress=progress)
            except MinimalDaskError as cleanup:
                failure.add_note(f"cleanup of cluster {spec.name} failed too: {cleanup}")
        raise
    return cluster


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
    kube = kube or Kube.connect(kubeconfig, context)
    progress = on_progress or _quiet
    (daemonset,) = render_prepuller(spec)
    kube.apply(daemonset)
    ds_name = daemonset["metadata"]["name"]
    selector = labels.label_selector(name, "prepuller")
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
