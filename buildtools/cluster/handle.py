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
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from distributed.core import Status, rpc
from distributed.deploy import Cluster
from distributed.utils import Log, Logs, format_dashboard_link

from buildtools.cluster import contract, labels, ssl_error_queue
from buildtools.cluster.client_guard import mismatch_message, own_minor, python_minor
from buildtools.cluster.credentials import of_cluster
from buildtools.cluster.kinds import POD
from buildtools.cluster.kube import Kube
from buildtools.cluster.kubetypes import DnsLabel, validate
from buildtools.cluster.lifecycle import delete_dask_cluster, require_stored_spec
from buildtools.cluster.reach import SchedulerReach
from buildtools.cluster.scaling import WorkerScaling
from buildtools.cluster.specs import ClusterSpec, cluster_spec
from buildtools.cluster.waits import Deadline, Progress, quiet
from buildtools.errors import VersionMismatchError, WaitTimeout

DEFAULT_CONNECT_TIMEOUT = 120.0


@dataclass(frozen=True)
class HandleOptions:
    """How a DaskCluster handle behaves: the keywords start_dask_cluster and DaskCluster.from_name
    take for it, declared here only."""

    connect: bool = True
    """Connect to the scheduler; False manages the Kubernetes objects only (no Client, and
    `scale` then only sets the replicas)."""
    check_python: bool = True
    """Refuse a scheduler whose Python minor differs from this client's (its pickled functions
    would crash the scheduler)."""
    shutdown_on_close: bool | None = None
    """Delete the cluster when the handle closes; None: only if this handle created it."""
    security: Any = None
    """distributed's Security for the connection; None: a TLS cluster's own, read from its Secret."""
    asynchronous: bool = False

    @classmethod
    def take(cls, keywords: dict[str, Any]) -> HandleOptions:
        """The handle's options among keywords, removed from them; the others stay."""
        names = [option.name for option in fields(cls)]
        return cls(**{name: keywords.pop(name) for name in names if name in keywords})


class DaskCluster(WorkerScaling, Cluster):
    """A Dask cluster on Kubernetes (its scheduler and worker Deployments).

    Made by `start_dask_cluster` (which creates or updates it) or `DaskCluster.from_name`
    (which attaches and changes nothing); how it behaves is its HandleOptions. Leaving `with`
    or `close()` deletes the cluster only when this handle created it, or when
    `shutdown_on_close=True`; `delete()` always does.
    """

    def __init__(
        self,
        spec: ClusterSpec,
        kube: Kube,
        options: HandleOptions = HandleOptions(),
        *,
        deploy: Callable[[], None] | None = None,
        created: bool = False,
        connect_timeout: float | Deadline = DEFAULT_CONNECT_TIMEOUT,
        progress: Progress = quiet,
        loop: Any = None,
    ) -> None:
        self.spec, self.kube, self.progress = spec, kube, progress
        self.shutdown_on_close = created if options.shutdown_on_close is None else options.shutdown_on_close
        self.check_python, self.security = options.check_python, options.security
        self._deploy, self._connect, self._connect_timeout = deploy, options.connect, connect_timeout
        asynchronous = options.asynchronous
        self._reach = SchedulerReach(kube, spec.name, spec.namespace)
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
    def from_name(
        cls,
        name: str,
        namespace: str = "default",
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        on_progress: Progress | None = None,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        **options: Any,
    ) -> DaskCluster:
        """Attach to a running cluster; nothing is applied or changed. `options` are HandleOptions'
        (shutdown_on_close: False unless given)."""
        validate(DnsLabel, "name", name)
        kube = Kube.connect(kubeconfig, context)
        fields = require_stored_spec(kube, name, namespace)
        handle_options = HandleOptions(**options)
        return cls(cluster_spec(fields), kube, handle_options, connect_timeout=timeout, progress=on_progress or quiet)

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
        address = await asyncio.to_thread(
            self._reach.address, contract.COMM_PORT_NAME, contract.SCHEDULER_PORT, self._scheme
        )
        self._dashboard = await asyncio.to_thread(
            self._reach.address, contract.DASHBOARD_PORT_NAME, contract.DASHBOARD_PORT, "http"
        )
        if self.spec.tls:
            ssl_error_queue.install()  # this process's TLS connections, as the pods' (see there)
            if self.security is None:
                credentials = await asyncio.to_thread(of_cluster, self.kube, self.spec)
                self.security = credentials.security()
        args = self.security.get_connection_args("client") if self.security else {}
        self.scheduler_comm = rpc(address, connection_args=args)
        versions = await self._scheduler_versions(Deadline.of(self._connect_timeout))
        if self.check_python:
            self._check_python(versions)
        await super()._start()
        self.progress(f"connected to the scheduler of cluster {self.namespace}/{self.name} at {address}")

    @property
    def _scheme(self) -> str:
        return "tls" if self.spec.tls else "tcp"

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
        client, scheduler = own_minor(), python_minor(versions)
        if scheduler is not None and client != scheduler:
            where, skip = f"cluster {self.namespace}/{self.name}", "check_python=False skips this check"
            raise VersionMismatchError(mismatch_message(where, scheduler, client, skip))

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
            for pod in self.kube.list(POD, self.namespace, labels.label_selector(self.name, component)):
                name = pod["metadata"]["name"]
                logs[name] = Log(self.kube.pod_log(self.namespace, name, tail=tail))
        return logs

    async def _close_connections(self) -> None:
        await Cluster._close(self)
        self._reach.close()

    async def _close(self) -> None:
        if self.status == Status.closed:
            return
        await self._close_connections()
        if self.shutdown_on_close:
            await asyncio.to_thread(delete_dask_cluster, self.name, self.namespace, kube=self.kube)

    def delete(self) -> None:
        """Close the handle and delete the cluster, whoever created it."""
        self.shutdown_on_close = True
        self.close()
