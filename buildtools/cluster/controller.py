"""The controller inside the scheduler: a minimaldask cluster scales, adopts and deletes itself.

The entrypoint preloads this file into the scheduler of a cluster on Kubernetes
(`dask scheduler --preload controller.py`, when MINIMALDASK_CLUSTER is set), so the cluster
manages itself after every client has gone: no operator, no client process, no cluster-wide
rights. Every PERIOD seconds it
- scales each worker Deployment (a worker group) that carries the ADAPT_ANNOTATION
  ({"minimum": m, "maximum": M} in JSON; `kubectl annotate` works as well as `cluster.adapt`)
  to its own target (`group_target`: distributed's `adaptive_target`, over the work that group
  can run and the group's workers; a group's Dask resources are its DASK_RESOURCES_ANNOTATION):
  up at once, down only once the target has stayed lower for
  SCALE_DOWN_TICKS periods (hysteresis). Down is graceful: pods whose worker has not joined go
  first, then the scheduler retires the workers it chooses (their data moves first) and
  exactly their pods get the lowest pod-deletion-cost before the replicas are lowered. A worker
  whose data has nowhere to go is not retired and keeps its pod;
- deletes the whole cluster (its root, the scheduler Deployment: the garbage collector takes
  the rest) once it has been idle for the IDLE_TIMEOUT_ANNOTATION's seconds: no task queued or
  processing (distributed's `check_idle`) and no client connected;
- adopts its cluster's objects: each gets the root as its owner, so that deleting the root
  (kubectl, delete_dask_cluster, the idle timeout) removes everything, however it was applied;
- for the cluster of a batch job (the root's JOB_ANNOTATION names the runner Job): makes the
  Job the root's owner (deleting the Job, or its ttlSecondsAfterFinished, removes the cluster)
  and deletes the cluster as soon as the Job has finished, its record kept for its status.

It calls the Kubernetes API with the pod's ServiceAccount token, through the few REST calls
below (`permissions` is the Role they need). Only the standard library and distributed: this
one file is copied into every image, and buildtools imports its names.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import math
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Scheduler

logger = logging.getLogger("minimaldask.controller")

ADAPT_ANNOTATION = "minimaldask/adapt"
IDLE_TIMEOUT_ANNOTATION = "minimaldask/idle-timeout"
# On the root of a batch job's cluster: the name of its runner Job (buildtools/cluster/jobs.py).
JOB_ANNOTATION = "minimaldask/job"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# The lowest cost there is (an int32): the ReplicaSet controller removes these pods first.
RETIRED_COST = str(-(2**31))
CLUSTER_LABEL = "dask.org/cluster-name"
COMPONENT_LABEL = "dask.org/component"
# On a worker group's Deployment and pods; the default group's carry none (its selector predates groups).
GROUP_LABEL = "dask.org/workergroup-name"
# On each worker Deployment: its workers' Dask resources ({"GPU": 1} in JSON), as `--resources` gives them.
DASK_RESOURCES_ANNOTATION = "minimaldask/dask-resources"
CLUSTER_ENV = "MINIMALDASK_CLUSTER"
NAMESPACE_ENV = "MINIMALDASK_NAMESPACE"
# Within 2 s of new work the first pod is asked for (dask-gateway polls every 3 s, the operator 5 s).
PERIOD = 1.0
SCALE_DOWN_TICKS = 3
# The pending tasks looked at per round (a sample, scaled to all: distributed's adaptive_target looks at 100).
PENDING_SAMPLE = 1000
# Adoption is repeated now and then: objects applied after the scheduler started get their owner too.
ADOPT_EVERY_TICKS = 30
REQUEST_TIMEOUT = 10.0
API_SERVER_NAME = "kubernetes.default.svc"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# The client every scheduler has for fire-and-forget futures: not a user's.
INTERNAL_CLIENTS = frozenset({"fire-and-forget"})

Obj = dict[str, Any]


def root_name(cluster: str) -> str:
    return f"{cluster}-scheduler"


def runner_name(cluster: str) -> str:
    """The Job that runs a batch job's command against the cluster."""
    return f"{cluster}-runner"


def worker_name(cluster: str, group: str | None = None) -> str:
    """The worker Deployment of the default group (group None), or of a worker group."""
    return f"{cluster}-worker" + (f"-{group}" if group else "")


def network_policy_name(cluster: str) -> str:
    """The cluster's NetworkPolicy: it covers every pod of the cluster, not one component's."""
    return f"{cluster}-dask"


def tls_secret_name(cluster: str) -> str:
    """The Secret of the TLS credentials minimaldask makes for a cluster (docs/TLS.md)."""
    return f"{cluster}-tls"


# Kind -> (API path prefix, plural): the kinds a cluster is made of, and what the controller touches.
KINDS = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "Pod": ("/api/v1", "pods"),
    "Job": ("/apis/batch/v1", "jobs"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "Secret": ("/api/v1", "secrets"),
}


def owned_by_name(cluster: str) -> list[tuple[str, str]]:
    """The (kind, name) of the objects adopted by name (a Role can restrict get and patch to
    names, not list): the scheduler's Service and identity, the cluster's NetworkPolicy and the
    TLS Secret minimaldask made for it (asked for even when the spec has none: a 404, and
    nothing to adopt)."""
    scheduler = [(kind, root_name(cluster)) for kind in ("Service", "ServiceAccount", "Role", "RoleBinding")]
    return [*scheduler, ("NetworkPolicy", network_policy_name(cluster)), ("Secret", tls_secret_name(cluster))]


def permissions(cluster: str, groups: Iterable[str] = (), job: bool = False) -> list[Obj]:
    """The Role rules of a cluster's scheduler: exactly the calls below, to its own objects where
    Kubernetes allows names (list cannot be limited by name; pod names are random, and a pod is
    only ever given its deletion cost); a batch job's cluster also reads its runner Job."""
    own = [root_name(cluster)]
    worker_names = [worker_name(cluster), *(worker_name(cluster, group) for group in groups)]

    def rule(kind: str, verbs: list[str], names: list[str] | None = None) -> Obj:
        prefix, plural = KINDS[kind]
        group = prefix.split("/")[2] if prefix.startswith("/apis/") else ""
        return {
            "apiGroups": [group],
            "resources": [plural],
            "verbs": verbs,
            **({"resourceNames": names} if names else {}),
        }

    return [
        rule("Deployment", ["list"]),
        rule("Deployment", ["get", "patch"], [root_name(cluster), *worker_names]),
        rule("Deployment", ["delete"], own),
        rule("Pod", ["list", "patch"]),
        *(rule(kind, ["get", "patch"], [name]) for kind, name in owned_by_name(cluster)),
        *([rule("Job", ["get"], [runner_name(cluster)])] if job else []),
    ]


@dataclass(frozen=True)
class Policy:
    """An adapt policy: the worker Deployment's replicas stay within [minimum, maximum]."""

    minimum: int
    maximum: int

    @classmethod
    def parse(cls, text: str) -> Policy:
        """From the annotation's JSON; ValueError names what is wrong with it."""
        try:
            found = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None
        if not isinstance(found, dict) or set(found) - {"minimum", "maximum"} or "maximum" not in found:
            raise ValueError('must be {"minimum": m, "maximum": M}')
        minimum, maximum = found.get("minimum", 0), found["maximum"]
        if not all(type(n) is int and n >= 0 for n in (minimum, maximum)) or minimum > maximum:
            raise ValueError("minimum and maximum must be counts, minimum <= maximum")
        return cls(minimum, maximum)

    def to_json(self) -> str:
        return json.dumps({"minimum": self.minimum, "maximum": self.maximum}, sort_keys=True)

    def clamp(self, target: int) -> int:
        return max(self.minimum, min(self.maximum, target))


def pod_selector(match_labels: dict[str, str]) -> str:
    """The label selector of a Deployment's or DaemonSet's own pods, from its matchLabels. The
    default group's worker selector (it predates groups) also matches the groups' pods: those
    carry GROUP_LABEL, which no other pod does, so a selector without it excludes them."""
    terms = [f"{key}={value}" for key, value in sorted(match_labels.items())]
    return ",".join(terms if GROUP_LABEL in match_labels else [*terms, f"!{GROUP_LABEL}"])


@dataclass(frozen=True)
class WorkerGroup:
    """A worker Deployment as the controller reads it: its pods' selector and its Dask resources."""

    deployment: Obj

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def replicas(self) -> int:
        return int(self.deployment["spec"].get("replicas", 1))

    @property
    def selector(self) -> str:
        return pod_selector(self.deployment["spec"]["selector"]["matchLabels"])

    @functools.cached_property  # asked for every pending task a round looks at
    def resources(self) -> dict[str, float]:
        text = (self.deployment["metadata"].get("annotations") or {}).get(DASK_RESOURCES_ANNOTATION) or "{}"
        try:
            found = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return {str(k): float(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def can_run(self, restrictions: dict[str, float] | None) -> bool:
        return all(self.resources.get(name, 0.0) >= amount for name, amount in (restrictions or {}).items())


def work_filter(group: WorkerGroup, groups: list[WorkerGroup]) -> Callable[[Any], bool]:
    """The pending tasks that count for a group: those restricted to Dask resources it has; the
    unrestricted ones count for the groups without resources (for every group when all have some)."""
    general = {g.name for g in groups if not g.resources} or {g.name for g in groups}

    def counts(task: Any) -> bool:
        restrictions = task.resource_restrictions
        return group.can_run(restrictions) if restrictions else group.name in general

    return counts


def group_target(scheduler: Scheduler, workers: list[Any], counts: Callable[[Any], bool]) -> int:
    """distributed's `Scheduler.adaptive_target`, for one group: its workers (WorkerStates) and
    the pending tasks that `counts`. For a cluster of one group it is adaptive_target's figure
    (with a larger sample of the pending tasks, so that a small group's work is seen)."""
    # Here, not at the top: buildtools imports this module's names, and dask need not load with them.
    import dask.config
    from dask.utils import parse_timedelta

    target_duration = parse_timedelta(dask.config.get("distributed.adaptive.target-duration"))
    pending = len(scheduler.queued) + len(scheduler.unrunnable)
    sample = list(itertools.islice(itertools.chain(scheduler.queued, scheduler.unrunnable), PENDING_SAMPLE))
    ours = [t for t in sample if counts(t)]
    scale = pending / len(sample) if sample else 0.0
    ready = len(ours) * scale
    occupancy = sum(scheduler._get_prefix_duration(t.prefix) for t in ours) * scale
    occupancy += sum(ws.occupancy for ws in workers)
    cpu = math.ceil(occupancy / target_duration)
    cpu = min(cpu, math.ceil(ready + sum(len(ws.processing) for ws in workers)))  # a few long tasks: no more
    if workers:
        cpu = math.ceil(cpu / sum(ws.nthreads for ws in workers) * len(workers))
    elif ready:
        cpu = max(1, cpu)
    limit, used = sum(ws.memory_limit for ws in workers), sum(ws.nbytes for ws in workers)
    memory = 2 * len(workers) if limit and used > 0.6 * limit else 0
    target = max(memory, cpu)
    if target >= len(workers):
        return target
    return len(workers) - closable(scheduler, workers)


def closable(scheduler: Scheduler, workers: list[Any]) -> int:
    """How many of these workers `Scheduler.workers_to_close()` would let go were they its only
    candidates: idle ones, least data first, while the cluster keeps twice its data's memory."""
    limit = sum(ws.memory_limit for ws in scheduler.workers.values())
    held = sum(ws.nbytes for ws in scheduler.workers.values())
    idle = sorted((ws for ws in workers if not ws.processing and not ws.long_running), key=lambda ws: ws.nbytes)
    count = 0
    for ws in idle:
        limit -= ws.memory_limit
        if limit < 2 * held:
            break
        count += 1
    return count


class KubeREST:
    """The few Kubernetes API calls the controller makes, over HTTPS with a bearer token.

    Blocking (urllib): the controller calls them in a thread, off the scheduler's event loop.
    The token is read at each call: the kubelet rotates a projected token in place."""

    def __init__(self, server: str, namespace: str, token: Callable[[], str], context: ssl.SSLContext) -> None:
        self.server, self.namespace, self._token, self._context = server.rstrip("/"), namespace, token, context

    @classmethod
    def in_pod(cls, namespace: str, account_dir: str = SERVICE_ACCOUNT_DIR) -> KubeREST:
        # By name, not $KUBERNETES_SERVICE_HOST: every API server certificate names
        # kubernetes.default.svc, not every one names the Service IP (kwokctl's does not).
        port = os.environ["KUBERNETES_SERVICE_PORT"]
        context = ssl.create_default_context(cafile=f"{account_dir}/ca.crt")

        def token() -> str:
            with open(f"{account_dir}/token") as file:
                return file.read().strip()

        return cls(f"https://{API_SERVER_NAME}:{port}", namespace, token, context)

    def path(self, kind: str, name: str = "") -> str:
        prefix, plural = KINDS[kind]
        return f"{prefix}/namespaces/{self.namespace}/{plural}" + (f"/{name}" if name else "")

    def request(self, method: str, path: str, body: Obj | None = None, query: dict[str, str] | None = None) -> Obj:
        url = self.server + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/merge-patch+json" if method == "PATCH" else "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - https only
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT, context=self._context) as answer:  # noqa: S310
            return dict(json.loads(answer.read() or b"{}"))

    def get(self, kind: str, name: str) -> Obj | None:
        try:
            return self.request("GET", self.path(kind, name))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def list(self, kind: str, selector: str) -> list[Obj]:
        return list(self.request("GET", self.path(kind), query={"labelSelector": selector}).get("items", []))

    def patch(self, kind: str, name: str, body: Obj) -> Obj:
        return self.request("PATCH", self.path(kind, name), body)

    def delete_tree(self, kind: str, name: str) -> None:
        """Delete an object; the garbage collector then deletes what it owns (Background)."""
        self.request("DELETE", self.path(kind, name), {"propagationPolicy": "Background"})


def api_unavailable(error: BaseException) -> bool:
    """Whether a call failed because the API server is away (unreachable, silent, or answering
    that it cannot serve: 5xx), rather than because of what was asked (4xx)."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500
    return isinstance(error, urllib.error.URLError | TimeoutError | ConnectionError)


def owner_reference(owner: Obj) -> Obj:
    """What an object owned by `owner` (as the API returned it) carries (no blockOwnerDeletion:
    that needs more rights)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }


def job_finished(job: Obj) -> str | None:
    """ "Complete" or "Failed" once a Job has finished (its controller's final condition), else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def needs_owner(obj: Obj, owner: Obj) -> bool:
    owners = obj["metadata"].get("ownerReferences") or []
    return obj["metadata"]["uid"] != owner["metadata"]["uid"] and not any(
        reference.get("uid") == owner["metadata"]["uid"] for reference in owners
    )


def adopted_owners(obj: Obj, root: Obj) -> list[Obj] | None:
    """The owners an object of the cluster should have: the root's, in place of a Job's (a batch
    job's start creates every object owned by its Job; once the root is up, it owns them, so that
    deleting the root deletes them: an object goes only when every owner has). None: as they are."""
    owners = obj["metadata"].get("ownerReferences") or []
    if obj["metadata"]["uid"] == root["metadata"]["uid"]:
        return None
    kept = [reference for reference in owners if reference.get("kind") != "Job"]
    wanted = kept if not needs_owner(obj, root) else [*kept, owner_reference(root)]
    return None if wanted == owners else wanted


@dataclass
class Controller:
    """One cluster's controller: `tick` is one round of adoption, scaling and the idle check."""

    scheduler: Scheduler
    kube: KubeREST
    cluster: str
    ticks_below: dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    idle_since: float | None = None
    deleting: bool = False
    unreachable_since: float | None = None  # when the API server stopped answering (monotonic)

    @property
    def selector(self) -> str:
        return f"{CLUSTER_LABEL}={self.cluster}"

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    async def tick(self) -> None:
        """Never raises: a failed round is logged and the next one tries again. An API server
        that does not answer is one warning when it stops and one line when it is back (not a
        traceback a second): meanwhile nothing is scaled or deleted, and Dask runs on."""
        try:
            await self._tick()
        except Exception as error:
            if not api_unavailable(error):
                logger.exception("minimaldask controller: this round failed; the next one tries again")
            elif self.unreachable_since is None:
                self.unreachable_since = time.monotonic()
                logger.warning(
                    "minimaldask controller: the Kubernetes API server does not answer (%s); "
                    "scaling and the idle check wait for it, the cluster runs on",
                    error,
                )
            return
        if self.unreachable_since is not None:
            logger.warning(
                "minimaldask controller: the Kubernetes API server answers again after %.0f s; scaling goes on",
                time.monotonic() - self.unreachable_since,
            )
            self.unreachable_since = None

    async def _tick(self) -> None:
        if self.deleting:
            return
        root = await self.call(self.kube.get, "Deployment", root_name(self.cluster))
        if root is None:
            return  # being deleted, or not applied by minimaldask: nothing to follow
        workers = await self.call(self.kube.list, "Deployment", f"{self.selector},{COMPONENT_LABEL}=worker")
        if self.ticks % ADOPT_EVERY_TICKS == 0:
            await self.adopt(root, workers)
        self.ticks += 1
        if await self.follow_job(root):
            return
        groups = [WorkerGroup(deployment) for deployment in workers]
        for group in groups:
            if policy := self.policy(group.deployment):
                await self.adapt(group, policy, work_filter(group, groups))
        await self.check_idle(root)

    def policy(self, deployment: Obj) -> Policy | None:
        text = (deployment["metadata"].get("annotations") or {}).get(ADAPT_ANNOTATION)
        if not text:
            return None
        try:
            return Policy.parse(text)
        except ValueError as error:
            logger.warning("minimaldask controller: %s %s ignored: %s", ADAPT_ANNOTATION, text, error)
            return None

    async def adopt(self, root: Obj, workers: Iterable[Obj]) -> int:
        """Give every object of the cluster the root as owner; returns how many were adopted."""
        found = [("Deployment", obj) for obj in workers]
        for kind, name in owned_by_name(self.cluster):
            obj = await self.call(self.kube.get, kind, name)
            # Only what carries the cluster's label: a user's own Secret of that name stays theirs.
            if obj is not None and (obj["metadata"].get("labels") or {}).get(CLUSTER_LABEL) == self.cluster:
                found.append((kind, obj))
        orphans = [(kind, obj, owners) for kind, obj in found if (owners := adopted_owners(obj, root)) is not None]
        for kind, obj, owners in orphans:
            await self.call(self.kube.patch, kind, obj["metadata"]["name"], {"metadata": {"ownerReferences": owners}})
        if orphans:
            logger.info(
                "minimaldask controller: adopted %s", ", ".join(f"{k} {o['metadata']['name']}" for k, o, _ in orphans)
            )
        return len(orphans)

    async def follow_job(self, root: Obj) -> bool:
        """A batch job's cluster: the runner Job owns the root, and once the Job has finished
        the cluster is deleted (True). Nothing to do for a cluster of no job, or before its Job
        exists (a GitOps apply may order it last)."""
        name = (root["metadata"].get("annotations") or {}).get(JOB_ANNOTATION)
        job = await self.call(self.kube.get, "Job", name) if name else None
        if job is None:
            return False
        if needs_owner(root, job):
            owners = {"ownerReferences": [*(root["metadata"].get("ownerReferences") or []), owner_reference(job)]}
            await self.call(self.kube.patch, "Deployment", root_name(self.cluster), {"metadata": owners})
            logger.info("minimaldask controller: cluster %s is now owned by Job %s", self.cluster, name)
        if finished := job_finished(job):
            await self.delete_cluster(f"Job {name} finished ({finished})")
            return True
        return False

    async def live_pods(self, group: WorkerGroup) -> list[Obj]:
        pods = await self.call(self.kube.list, "Pod", group.selector)
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def workers_in(self, pods: Iterable[Obj]) -> list[Any]:
        """The scheduler's WorkerStates of these pods (a worker is at its pod's IP)."""
        ips = {(p.get("status") or {}).get("podIP") for p in pods}
        return [ws for ws in self.scheduler.workers.values() if ws.host in ips]

    async def adapt(self, group: WorkerGroup, policy: Policy, counts: Callable[[Any], bool]) -> None:
        """One round of a group's scaling; `counts` picks the pending tasks that are its work."""
        name, replicas = group.name, group.replicas
        pods = await self.live_pods(group)
        target = policy.clamp(group_target(self.scheduler, self.workers_in(pods), counts))
        if target >= replicas:
            self.ticks_below[name] = 0
            if target > replicas:
                logger.info("minimaldask controller: %s %d -> %d workers", name, replicas, target)
                await self.call(self.kube.patch, "Deployment", name, {"spec": {"replicas": target}})
            return
        self.ticks_below[name] = self.ticks_below.get(name, 0) + 1
        if self.ticks_below[name] >= SCALE_DOWN_TICKS:
            self.ticks_below[name] = 0
            await self.scale_down(group, replicas - target, pods)

    async def scale_down(self, group: WorkerGroup, excess: int, live: list[Obj] | None = None) -> int:
        """Remove up to `excess` of the group's (live) pods: those whose worker has not joined,
        then those of the workers the scheduler retired. Returns how many pods go."""
        name, replicas = group.name, group.replicas
        live = await self.live_pods(group) if live is None else live
        joined_hosts = {ws.host for ws in self.scheduler.workers.values()}
        going = [p for p in live if (p.get("status") or {}).get("podIP") not in joined_hosts][:excess]
        if left := excess - len(going):
            ours = {ws.address for ws in self.workers_in(live)}
            # The scheduler's ranking of every worker (idle and holding least first), ours kept.
            ranked = self.scheduler.workers_to_close(n=len(self.scheduler.workers))
            chosen = [address for address in ranked if address in ours][:left]
            retired = await self.scheduler.retire_workers(
                workers=chosen, close_workers=True, remove=True, stimulus_id=f"minimaldask-adapt-{time.time()}"
            )
            retired_hosts = {info.get("host") for info in retired.values()}
            going += [p for p in live if (p.get("status") or {}).get("podIP") in retired_hosts]
        if not going:
            return 0
        for pod in going:
            await self.call(
                self.kube.patch,
                "Pod",
                pod["metadata"]["name"],
                {"metadata": {"annotations": {DELETION_COST: RETIRED_COST}}},
            )
        new = max(0, replicas - len(going))
        logger.info(
            "minimaldask controller: %s %d -> %d workers (removing %s)",
            name,
            replicas,
            new,
            ", ".join(p["metadata"]["name"] for p in going),
        )
        await self.call(self.kube.patch, "Deployment", name, {"spec": {"replicas": new}})
        return len(going)

    def clients(self) -> int:
        return sum(1 for client in self.scheduler.clients if client not in INTERNAL_CLIENTS)

    async def check_idle(self, root: Obj) -> None:
        """Delete the cluster once idle for its timeout: no task (check_idle) and no client."""
        text = (root["metadata"].get("annotations") or {}).get(IDLE_TIMEOUT_ANNOTATION)
        if not text:
            self.idle_since = None
            return
        try:
            timeout = float(text)
        except ValueError:
            logger.warning(
                "minimaldask controller: %s %r ignored: not a number of seconds", IDLE_TIMEOUT_ANNOTATION, text
            )
            return
        busy = self.scheduler.check_idle() is None or self.clients() > 0
        now = time.monotonic()
        if busy or self.idle_since is None:
            self.idle_since = None if busy else now
            return
        if now - self.idle_since >= timeout:
            await self.delete_cluster(f"idle for {now - self.idle_since:.0f} s")

    async def delete_cluster(self, reason: str) -> None:
        """Delete the root; the garbage collector takes the rest. Nothing more is done after it."""
        logger.info("minimaldask controller: %s: deleting cluster %s", reason, self.cluster)
        self.deleting = True
        await self.call(self.kube.delete_tree, "Deployment", root_name(self.cluster))


async def run(controller: Controller, period: float = PERIOD) -> None:
    """Tick every `period` seconds, until cancelled (the scheduler's close)."""
    while True:
        started = time.monotonic()
        await controller.tick()
        await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


async def dask_setup(scheduler: Scheduler) -> None:
    """distributed's preload hook: start the controller in the scheduler's event loop."""
    cluster, namespace = os.environ.get(CLUSTER_ENV), os.environ.get(NAMESPACE_ENV)
    if not cluster or not namespace:
        logger.warning("minimaldask controller: %s or %s is not set: not started", CLUSTER_ENV, NAMESPACE_ENV)
        return
    controller = Controller(scheduler, KubeREST.in_pod(namespace), cluster)
    task = asyncio.create_task(run(controller), name="minimaldask-controller")
    scheduler._minimaldask_controller = task  # type: ignore[attr-defined]  # kept: asyncio holds tasks weakly
    logger.info("minimaldask controller: managing cluster %s/%s", namespace, cluster)


async def dask_teardown(scheduler: Scheduler) -> None:
    if task := getattr(scheduler, "_minimaldask_controller", None):
        task.cancel()
