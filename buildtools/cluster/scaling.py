"""Scaling a cluster's workers from the handle: replicas up; down through the scheduler's
retirement of the workers it chooses, then exactly their pods go (the lowest
pod-deletion-cost before the replicas are lowered). A worker is known by its address, a pod by
its IP: the pod of a worker is the one at its host. `adapt` records the policy that the
controller in the scheduler pod follows (controller.py); `adapt_in_client` is Dask's Adaptive
in this process.

A mixin of handle.DaskCluster (a distributed.deploy.Cluster): it reads the handle's kube,
spec and scheduler connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from distributed.deploy import Adaptive, Cluster

from buildtools.cluster import labels
from buildtools.cluster.controller import ADAPT_ANNOTATION, DELETION_COST, RETIRED_COST, Policy
from buildtools.cluster.kinds import DEPLOYMENT, POD
from buildtools.cluster.kube import Kube
from buildtools.cluster.kubetypes import Count, validate
from buildtools.cluster.lifecycle import Workload, wait_rollout
from buildtools.cluster.spec_parts import AdaptPolicy
from buildtools.cluster.waits import Progress


class PodAdaptive(Adaptive):
    """Dask's Adaptive, with the worker pods read again before each decision."""

    cluster: WorkerScaling

    async def recommendations(self, target: int) -> dict[str, Any]:
        await self.cluster._refresh_pods()
        return dict(await super().recommendations(target))


@dataclass(frozen=True)
class ClusterAdaptive:
    """What `DaskCluster.adapt` returns: the policy the cluster follows; `stop()` ends it
    (the workers then stay as many as they are)."""

    cluster: WorkerScaling
    policy: Policy
    group: str | None = None

    def stop(self) -> None:
        self.cluster._record_policy(None, self.group)


class WorkerScaling(Cluster):
    """scale, scale_down, adapt and what Adaptive reads (plan, requested), for DaskCluster.
    `group` names a worker group (spec.worker_groups); None is the default group, the one
    Dask's Adaptive (adapt_in_client) scales."""

    kube: Kube
    progress: Progress
    _pods: list[dict[str, Any]]
    _seen: dict[str, str]  # worker name -> its pod, also after the worker has left

    def worker_deployment(self, group: str | None = None) -> str:
        self.spec.group(group)  # a one-line ConfigError for a group the cluster has not
        return labels.worker_deployment_name(self.name, group)

    def _list_pods(self, group: str | None = None) -> list[dict[str, Any]]:
        self.spec.group(group)  # a one-line ConfigError for a group the cluster has not
        pods = self.kube.list(POD, self.namespace, labels.worker_pod_selector(self.name, group))
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

    def scale(self, n: int, group: str | None = None) -> Any:
        """n workers (in a worker group); fewer: the scheduler chooses which go, and their data
        moves first. Adaptive scaling of that group stops (as in Dask): the controller leaves it at n."""
        validate(Count, "n", n)
        self._record_policy(None, group)
        return self.sync(self._scale, n, group)

    async def _scale(self, n: int, group: str | None = None) -> None:
        pods = await asyncio.to_thread(self._list_pods, group)
        if self.scheduler_comm is None or n >= len(pods):
            await self._set_replicas(n, group)
            return
        keyed = {self._key(p): str(p["metadata"]["name"]) for p in pods}
        self._seen.update(keyed)
        excess = len(pods) - n
        chosen = sorted(set(keyed) - self.observed)[:excess]  # pods whose worker has not joined first
        if left := excess - len(chosen):
            chosen += await self._choose(left, among=set(keyed) - set(chosen))
            await self.scheduler_comm.retire_workers(names=chosen, remove=True, close_workers=True)
        await self._scale_down(chosen, group)

    async def _choose(self, count: int, among: set[str]) -> list[str]:
        """`count` of these joined workers, the scheduler's choice first (the idle, holding least),
        then the ones holding least: retirement moves their data, whichever they are."""
        assert self.scheduler_comm is not None
        info = await self.scheduler_comm.identity()
        ranked = await self.scheduler_comm.workers_to_close(n=len(info["workers"]), attribute="name")
        by_memory = sorted(info["workers"].values(), key=lambda w: w.get("metrics", {}).get("managed_bytes", 0))
        ordered = [*ranked, *(w["name"] for w in by_memory)]
        return list(dict.fromkeys(w for w in ordered if w in among))[:count]

    def scale_down(self, workers: Iterable[str]) -> Any:
        """Remove the pods of these workers (names, as Adaptive gives them), once retired."""
        return self.sync(self._scale_down, list(workers))

    async def _scale_down(self, workers: list[str], group: str | None = None) -> None:
        if group is None:
            self._keyed_pods()
        pods = await asyncio.to_thread(self._list_pods, group)
        joined: set[str] = set()
        if self.scheduler_comm is not None:
            info = await self.scheduler_comm.identity()
            joined = {w["host"] for w in info["workers"].values()}
        # Only pods where no worker runs now: one the scheduler could not retire (its data had
        # nowhere to go), or that has joined since it was chosen, keeps its pod.
        wanted = {self._seen.get(w, w) for w in workers}
        going = sorted(
            p["metadata"]["name"]
            for p in pods
            if p["metadata"]["name"] in wanted and p.get("status", {}).get("podIP") not in joined
        )
        if not going:
            return
        self.progress(f"removing the pods of retired workers: {', '.join(going)}")
        await asyncio.to_thread(self._remove_pods, going, len(pods) - len(going), group)

    def _remove_pods(self, names: list[str], replicas: int, group: str | None) -> None:
        for name in names:
            self.kube.annotate(POD, name, self.namespace, {DELETION_COST: RETIRED_COST})
        self.kube.patch_scale(self.worker_deployment(group), self.namespace, replicas)

    async def _set_replicas(self, n: int, group: str | None = None) -> None:
        await asyncio.to_thread(self.kube.patch_scale, self.worker_deployment(group), self.namespace, n)

    def adapt(  # type: ignore[override]
        self, minimum: int = 0, maximum: int | None = None, group: str | None = None
    ) -> ClusterAdaptive:
        """Scale with the scheduler's load, from inside the cluster: the policy is recorded on the
        group's worker Deployment (ADAPT_ANNOTATION) and the controller in the scheduler pod
        follows it, also after this process has exited. `minimum=0` keeps no worker of the
        group when it has no work; work submitted later brings them back."""
        policy = AdaptPolicy(minimum=minimum, maximum=maximum).policy  # a one-line ConfigError when bad
        self._record_policy(policy, group)
        return ClusterAdaptive(self, policy, group)

    def adapt_in_client(self, **kwargs: Any) -> PodAdaptive:
        """Dask's own Adaptive, in this process (it stops with it): Adaptive's options, and the
        client-side way bench/adapt.py compares the controller with."""
        return super().adapt(Adaptive=PodAdaptive, **kwargs)  # type: ignore[return-value]

    def _record_policy(self, policy: Policy | None, group: str | None = None) -> None:
        value = policy.to_json() if policy else None  # None: a merge patch removes the annotation
        self.kube.annotate(DEPLOYMENT, self.worker_deployment(group), self.namespace, {ADAPT_ANNOTATION: value})

    def wait_for_pods(self, timeout: float = 300.0, group: str | None = None) -> None:
        """Until a group's worker Deployment is rolled out (its replicas Ready), within the timeout."""
        workload = Workload(DEPLOYMENT, self.worker_deployment(group), self.namespace)
        wait_rollout(self.kube, workload, timeout, self.progress)
