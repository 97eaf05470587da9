"""The handle of a Dask cluster on Kubernetes: a `distributed.deploy.Cluster`.

So `Client(cluster)`, `scale`, `adapt`, `get_logs`, the notebook widget and `async with`
follow Dask's own contract. No operator, no custom resource: the two Deployments are the
source of truth, and the handle only reads and patches them (through kube, the only module
that calls the API; its calls are blocking, so they run in a thread, off the event loop).

Scaling down is graceful: the scheduler chooses the workers to go (`workers_to_close`),
retires them (their data moves to the workers that stay), and exactly the pods of the workers
it retired are removed: they get the lowest `controller.kubernetes.io/pod-deletion-cost`
before the replicas are lowered, so the ReplicaSet controller deletes them and no other.
A worker is known by its address, a pod by its IP: the pod of a worker is the one at its host.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from distributed.core import Status, rpc
from distributed.deploy import Adaptive, Cluster
from distributed.utils import Log, Logs, format_dashboard_link

from buildtools.cluster import contract, labels
from buildtools.cluster.controller import ADAPT_ANNOTATION, DELETION_COST, RETIRED_COST, Policy
from buildtools.cluster.kube import Kube, PortForward
from buildtools.cluster.kubetypes import Count, validate
from buildtools.cluster.specs import AdaptPolicy, ClusterSpec
from buildtools.cluster.waits import Deadline, Progress
from buildtools.errors import DeployError, VersionMismatchError, WaitTimeout

DEFAULT_CONNECT_TIMEOUT = 120.0


def _quiet(_: str) -> None:
    pass


def python_minor(versions: dict[str, Any]) -> str:
    """ "3.13" from a `get_versions()` answer ({"host": {"python": "3.13.5.final.0", ...}})."""
    return ".".join(str(versions.get("host", {}).get("python", "?")).split(".")[:2])


class PodAdaptive(Adaptive):
    """Dask's Adaptive, with the worker pods read again before each decision."""

    cluster: DaskCluster

    async def recommendations(self, target: int) -> dict[str, Any]:
        await self.cluster._refresh_pods()
        return dict(await super().recommendations(target))


@dataclass(frozen=True)
class ClusterAdaptive:
    """What `DaskCluster.adapt` returns: the policy the cluster follows; `stop()` ends it
    (the workers then stay as many as they are)."""

    cluster: DaskCluster
    policy: Policy

    def stop(self) -> None:
        self.cluster._record_policy(None)


class DaskCluster(Cluster):
    """A Dask cluster on Kubernetes (its scheduler and worker Deployments).

    Made by `start_dask_cluster` (which creates or updates it) or `DaskCluster.from_name`
    (which attaches and changes nothing). Leaving `with` or `close()` deletes the cluster
    only when this handle created it, or when `shutdown_on_close=True`; `delete()` always does.

    `check_python` (default True): refuse a scheduler whose Python minor differs from this
    client's (its pickled functions would crash the scheduler); False skips the check.
    `connect=False`: manage the Kubernetes objects only, without a scheduler connection
    (no Client, no graceful scale-down: `scale` then only sets the replicas).
    """

    _adaptive: PodAdaptive | None

    def __init__(
        self,
        spec: ClusterSpec,
        kube: Kube,
        *,
        deploy: Callable[[], None] | None = None,
        shutdown_on_close: bool = False,
        connect: bool = True,
        check_python: bool = True,
        connect_timeout: float | Deadline = DEFAULT_CONNECT_TIMEOUT,
        security: Any = None,
        progress: Progress = _quiet,
        asynchronous: bool = False,
        loop: Any = None,
    ) -> None:
        self.spec, self.kube, self.progress = spec, kube, progress
        self.shutdown_on_close, self.check_python, self.security = shutdown_on_close, check_python, security
        self._deploy, self._connect, self._connect_timeout = deploy, connect, connect_timeout
        self._forwards: dict[int, PortForward] = {}
        self._pods: list[dict[str, Any]] = []
        self._seen: dict[str, str] = {}  # worker name -> its pod, also after the worker has left
        self._dashboard = ""
        self._started = False  # the deploy ran; without a connection the status stays `created`
        super().__init__(asynchronous=asynchronous, loop=loop, quiet=True, name=spec.name)
        if not asynchronous:
            self._loop_runner.start()
            try:
                self.sync(self._start)
            except BaseException:
                self.sync(self._close_connections)
                self._loop_runner.stop()
                raise

    @classmethod
    def from_name(cls, name: str, namespace: str = "default", **kwargs: Any) -> DaskCluster:
        """Attach to a running cluster; nothing is changed (start_dask_cluster's keywords)."""
        from buildtools.cluster.deploy import attach

        return attach(name, namespace, **kwargs)

    @property
    def name(self) -> str:  # the spec's, not what the scheduler's metadata says
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.spec.namespace

    def __await__(self) -> Any:
        async def started() -> DaskCluster:
            if not self._started:
                try:
                    await self._start()
                except BaseException:
                    await self._close_connections()
                    raise
            return self

        return started().__await__()

    async def _start(self) -> None:
        self._started = True
        if self._deploy is not None:
            await asyncio.to_thread(self._deploy)
        if not self._connect:
            return
        address = await asyncio.to_thread(self._reach, contract.COMM_PORT_NAME, contract.SCHEDULER_PORT, self._scheme)
        self._dashboard = await asyncio.to_thread(
            self._reach, contract.DASHBOARD_PORT_NAME, contract.DASHBOARD_PORT, "http"
        )
        args = self.security.get_connection_args("client") if self.security else {}
        self.scheduler_comm = rpc(address, connection_args=args)
        versions = await self._scheduler_versions(Deadline.of(self._connect_timeout))
        if self.check_python:
            self._check_python(versions)
        await super()._start()
        self.progress(f"connected to the scheduler of cluster {self.namespace}/{self.name} at {address}")

    @property
    def _scheme(self) -> str:
        return "tls" if self.spec.use_tls else "tcp"

    async def _scheduler_versions(self, deadline: Deadline) -> dict[str, Any]:
        """The scheduler's versions: its first answer, asked until it answers or the deadline."""
        assert self.scheduler_comm is not None
        last = "no answer yet"
        while deadline.left():
            try:
                return dict(await asyncio.wait_for(self.scheduler_comm.versions(packages=[]), deadline.left()))
            except (OSError, TimeoutError) as e:
                last = f"{type(e).__name__}: {e}"
                await asyncio.sleep(min(1.0, deadline.left()))
        raise WaitTimeout(
            f"timed out after {deadline.seconds:.3g} s waiting for the scheduler of cluster "
            f"{self.namespace}/{self.name} to answer at {self.scheduler_comm.address}; last: {last}"
        )

    def _check_python(self, versions: dict[str, Any]) -> None:
        client, scheduler = f"{sys.version_info.major}.{sys.version_info.minor}", python_minor(versions)
        if client != scheduler:
            raise VersionMismatchError(
                f"cluster {self.namespace}/{self.name} runs Python {scheduler}, this client Python {client}: "
                f"functions pickled here can crash its scheduler. Use the image of your Python "
                f"(tag <dask>-py{client}), or a client on Python {scheduler}; check_python=False skips this check"
            )

    # Where the scheduler is, from where this process runs.

    def _reach(self, port_name: str, port: int, scheme: str) -> str:
        service_name = labels.scheduler_service_name(self.name)
        if self.kube.in_cluster:
            return f"{scheme}://{service_name}.{self.namespace}.svc:{port}"
        service = self.kube.get("v1", "Service", service_name, self.namespace)
        if service is None:
            raise DeployError(f"the scheduler Service of cluster {self.namespace}/{self.name} is gone")
        service_port = next(p for p in service["spec"]["ports"] if p["name"] == port_name)
        if service["spec"]["type"] == "LoadBalancer":
            ingress = (service.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0]
            address = ingress.get("ip") or ingress.get("hostname")
            if not address:
                raise DeployError(f"the LoadBalancer of cluster {self.name} has no address yet")
            return f"{scheme}://{address}:{service_port['port']}"
        if service["spec"]["type"] == "NodePort":
            return f"{scheme}://{self._node_address()}:{service_port['nodePort']}"
        if port not in self._forwards:
            if not self.kube.ready_pods(self.namespace, service_name):  # fail now, not at the first connection
                raise DeployError(f"no Ready scheduler pod in cluster {self.namespace}/{self.name} to forward to")
            self._forwards[port] = self.kube.port_forward(self.namespace, service_name, port)
        return f"{scheme}://127.0.0.1:{self._forwards[port].local_port}"

    def _node_address(self) -> str:
        for pod in self.kube.list("v1", "Pod", self.namespace, labels.label_selector(self.name, "scheduler")):
            if host_ip := pod.get("status", {}).get("hostIP"):
                return str(host_ip)
        raise DeployError(f"the scheduler pod of cluster {self.name} has no node yet")

    @property
    def dashboard_link(self) -> str:
        """The dashboard's status page at an address that works from here (the forward outside the cluster)."""
        if not self._dashboard:
            return ""
        host_port = self._dashboard.split("://", 1)[1]
        host, port = host_port.rsplit(":", 1)
        return format_dashboard_link(host, int(port))

    def __repr__(self) -> str:
        workers = len(self.scheduler_info["workers"])
        return f"DaskCluster({self.namespace}/{self.name}, {self.scheduler_address!r}, workers={workers})"

    # Scaling: replicas up; down through the scheduler's retirement of the workers it chooses.

    @property
    def worker_deployment(self) -> str:
        return labels.component_name(self.name, "worker")

    def _list_pods(self) -> list[dict[str, Any]]:
        pods = self.kube.list("v1", "Pod", self.namespace, labels.label_selector(self.name, "worker"))
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    async def _refresh_pods(self) -> None:
        self._pods = await asyncio.to_thread(self._list_pods)

    def _worker_of(self, pod: dict[str, Any]) -> str | None:
        """The name of the worker running in a pod, if it has joined the scheduler."""
        ip = pod.get("status", {}).get("podIP")
        return next((w["name"] for w in self.scheduler_info["workers"].values() if ip and w.get("host") == ip), None)

    def _key(self, pod: dict[str, Any]) -> str:
        """A pod as Adaptive counts it: its worker's name once it has joined, else the pod's."""
        return str(self._worker_of(pod) or pod["metadata"]["name"])

    def _keyed_pods(self) -> dict[str, str]:
        """The pods by key; remembered, as a retired worker leaves the scheduler before its pod goes."""
        keyed = {self._key(p): str(p["metadata"]["name"]) for p in self._pods}
        self._seen.update(keyed)
        return keyed

    @property
    def plan(self) -> set[str]:
        return set(self._keyed_pods())

    @property
    def requested(self) -> set[str]:
        return self.plan

    def scale(self, n: int) -> Any:
        """n workers; fewer: the scheduler chooses which go, and their data moves first.
        Adaptive scaling stops (as in Dask): the controller leaves the workers at n."""
        validate(Count, "n", n)
        self._record_policy(None)
        return self.sync(self._scale, n)

    async def _scale(self, n: int) -> None:
        await self._refresh_pods()
        if self.scheduler_comm is None or n >= len(self._pods):
            await self._set_replicas(n)
            return
        excess = len(self._pods) - n
        not_arrived = sorted(self.plan - self.observed)[:excess]
        chosen = list(not_arrived)
        if left := excess - len(chosen):
            chosen += await self._choose(left, exclude=chosen)
            await self.scheduler_comm.retire_workers(names=chosen, remove=True, close_workers=True)
        await self._scale_down(chosen)

    async def _choose(self, count: int, exclude: Iterable[str]) -> list[str]:
        """`count` joined workers, the scheduler's choice first (the idle, holding least), then the
        ones holding least: retirement moves their data, whichever they are."""
        assert self.scheduler_comm is not None
        chosen = [w for w in await self.scheduler_comm.workers_to_close(n=count, attribute="name") if w not in exclude]
        info = await self.scheduler_comm.identity()
        by_memory = sorted(info["workers"].values(), key=lambda w: w.get("metrics", {}).get("managed_bytes", 0))
        rest = [w["name"] for w in by_memory if w["name"] not in chosen and w["name"] not in exclude]
        return (chosen + rest)[:count]

    def scale_down(self, workers: Iterable[str]) -> Any:
        """Remove the pods of these workers (names, as Adaptive gives them), once retired."""
        return self.sync(self._scale_down, list(workers))

    async def _scale_down(self, workers: list[str]) -> None:
        self._keyed_pods()
        await self._refresh_pods()
        joined: set[str] = set()
        if self.scheduler_comm is not None:
            info = await self.scheduler_comm.identity()
            joined = {w["host"] for w in info["workers"].values()}
        # Only pods where no worker runs now: one the scheduler could not retire (its data had
        # nowhere to go), or that has joined since it was chosen, keeps its pod.
        wanted = {self._seen.get(w, w) for w in workers}
        going = sorted(
            p["metadata"]["name"]
            for p in self._pods
            if p["metadata"]["name"] in wanted and p.get("status", {}).get("podIP") not in joined
        )
        if not going:
            return
        self.progress(f"removing the pods of retired workers: {', '.join(going)}")
        await asyncio.to_thread(self._remove_pods, going, len(self._pods) - len(going))

    def _remove_pods(self, names: list[str], replicas: int) -> None:
        for name in names:
            self.kube.annotate("v1", "Pod", name, self.namespace, {DELETION_COST: RETIRED_COST})
        self.kube.patch_scale(self.worker_deployment, self.namespace, replicas)

    async def _set_replicas(self, n: int) -> None:
        await asyncio.to_thread(self.kube.patch_scale, self.worker_deployment, self.namespace, n)

    def adapt(self, minimum: int = 0, maximum: int | None = None) -> ClusterAdaptive:  # type: ignore[override]
        """Scale with the scheduler's load, from inside the cluster: the policy is recorded on the
        worker Deployment (ADAPT_ANNOTATION) and the controller in the scheduler pod follows it,
        also after this process has exited. `minimum=0` keeps only the scheduler when idle."""
        policy = AdaptPolicy(minimum=minimum, maximum=maximum).policy  # a one-line ConfigError when bad
        self._record_policy(policy)
        return ClusterAdaptive(self, policy)

    def adapt_in_client(self, **kwargs: Any) -> PodAdaptive:
        """Dask's own Adaptive, in this process (it stops with it): Adaptive's options, and the
        client-side way bench/adapt.py compares the controller with."""
        return super().adapt(Adaptive=PodAdaptive, **kwargs)  # type: ignore[return-value]

    def _record_policy(self, policy: Policy | None) -> None:
        value = policy.to_json() if policy else None  # None: a merge patch removes the annotation
        self.kube.annotate("apps/v1", "Deployment", self.worker_deployment, self.namespace, {ADAPT_ANNOTATION: value})

    def wait_for_pods(self, timeout: float = 300.0) -> None:
        """Until the worker Deployment is rolled out (its replicas Ready), within the timeout."""
        from buildtools.cluster.deploy import wait_rollout

        wait_rollout(
            self.kube,
            "apps/v1",
            "Deployment",
            self.worker_deployment,
            self.namespace,
            labels.label_selector(self.name, "worker"),
            timeout,
            self.progress,
        )

    # Logs and lifecycle.

    def get_logs(  # type: ignore[override]
        self, cluster: bool = True, scheduler: bool = True, workers: bool = True, tail: int | None = None
    ) -> Logs:
        """The containers' logs by pod name, from Kubernetes (there even when the scheduler is not)."""
        components = [c for c, wanted in (("scheduler", scheduler), ("worker", workers)) if wanted]
        logs = Logs()
        if cluster:
            logs["Cluster"] = Log("\n".join(line for _, line in self._cluster_manager_logs))
        for component in components:
            for pod in self.kube.list("v1", "Pod", self.namespace, labels.label_selector(self.name, component)):
                name = pod["metadata"]["name"]
                logs[name] = Log(self.kube.pod_log(self.namespace, name, tail=tail))
        return logs

    async def _close_connections(self) -> None:
        await Cluster._close(self)
        for forward in self._forwards.values():
            forward.close()
        self._forwards.clear()

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        await self._close_connections()
        if self.shutdown_on_close:
            from buildtools.cluster.deploy import delete_dask_cluster

            await asyncio.to_thread(delete_dask_cluster, self.name, self.namespace, kube=self.kube)

    def delete(self) -> None:
        """Close the handle and delete the cluster, whoever created it."""
        self.shutdown_on_close = True
        self.close()
