"""The controller's decisions, with a REAL Dask scheduler and REAL workers in this process (on
127.0.0.2, 127.0.0.3 ... so that each has its own host, as each pod has its own IP).

`FakeKube` stands in for the Kubernetes API here: in-process workers run in no pod, so a real
API server would have no pods at their addresses. It keeps the objects as the API would
(merge patches) and records every call. The REST client itself, the Role and the garbage
collector run against a real API server in test_controller_kwok.py; the whole loop in a real
scheduler pod in tests/e2e.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import urllib.error
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from distributed import Client, Scheduler, Worker

from buildtools.cluster import controller as c
from buildtools.cluster import labels
from buildtools.cluster.render import render_cluster, render_job
from buildtools.cluster.specs import JobSpec, cluster_spec

Obj = dict[str, Any]
NAME = "demo"


def merge(target: Obj, patch: Obj) -> None:
    """RFC 7386, as the API server applies a merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    """Stands in for KubeREST (see the module's docstring): objects by (kind, name), and the calls."""

    def __init__(self, objects: list[Obj]) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): copy.deepcopy(o) for o in objects}
        for index, obj in enumerate(self.objects.values()):
            obj["metadata"]["uid"] = f"uid-{index}"
        self.calls: list[tuple[str, str, str]] = []
        self.failing = False

    def _call(self, verb: str, kind: str, name: str) -> None:
        if self.failing:  # what KubeREST raises when nothing listens
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        self.calls.append((verb, kind, name))

    def get(self, kind: str, name: str) -> Obj | None:
        self._call("get", kind, name)
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def list(self, kind: str, selector: str) -> list[Obj]:
        self._call("list", kind, selector)
        terms = selector.split(",")
        wanted = dict(term.split("=") for term in terms if not term.startswith("!"))
        absent = {term[1:] for term in terms if term.startswith("!")}

        def matches(labels: dict[str, str]) -> bool:
            return wanted.items() <= labels.items() and not absent & set(labels)

        return [
            copy.deepcopy(o)
            for (k, _), o in self.objects.items()
            if k == kind and matches(o["metadata"].get("labels", {}))
        ]

    def patch(self, kind: str, name: str, body: Obj) -> Obj:
        self._call("patch", kind, name)
        merge(self.objects[(kind, name)], body)
        return copy.deepcopy(self.objects[(kind, name)])

    def delete_tree(self, kind: str, name: str) -> None:
        self._call("delete", kind, name)
        del self.objects[(kind, name)]

    def add_pod(self, ip: str | None, group: str | None = None) -> str:
        name = f"{labels.worker_deployment_name(NAME, group)}-{len(self.pods())}"
        pod_labels = {**labels.component_labels(NAME, "worker"), **labels.group_labels(group)}
        status = {"podIP": ip} if ip else {}
        self.objects[("Pod", name)] = {
            "kind": "Pod",
            "metadata": {"name": name, "labels": pod_labels},
            "status": status,
        }
        return name

    def pods(self) -> dict[str, Obj]:
        return {name: obj for (kind, name), obj in self.objects.items() if kind == "Pod"}

    @property
    def replicas(self) -> int:
        return self.group_replicas(None)

    def group_replicas(self, group: str | None) -> int:
        return int(self.objects[("Deployment", labels.worker_deployment_name(NAME, group))]["spec"]["replicas"])

    def retired(self) -> set[str]:
        cost = c.DELETION_COST
        return {n for n, p in self.pods().items() if p["metadata"].get("annotations", {}).get(cost) == c.RETIRED_COST}


def fake_kube(n_workers: int, **fields: Any) -> FakeKube:
    return FakeKube(render_cluster(cluster_spec(name=NAME, image="example/debian:1", n_workers=n_workers, **fields)))


@asynccontextmanager
async def dask(n_workers: int, **fields: Any) -> AsyncIterator[tuple[Scheduler, list[Worker], FakeKube]]:
    """A scheduler, n workers on their own loopback hosts with a pod each, and the cluster's objects."""
    async with AsyncExitStack() as stack:
        scheduler = await stack.enter_async_context(Scheduler(host="127.0.0.1", port=0, dashboard_address=":0"))
        kube = fake_kube(n_workers, **fields)
        workers = []
        for index in range(n_workers):
            host = f"127.0.0.{index + 2}"
            worker = Worker(scheduler.address, host=host, nthreads=1, dashboard_address=":0")
            workers.append(await stack.enter_async_context(worker))
            kube.add_pod(host)
        yield scheduler, workers, kube


def controller(scheduler: Scheduler, kube: FakeKube) -> c.Controller:
    return c.Controller(scheduler, kube, NAME)  # type: ignore[arg-type]  # the FakeKube stands in


async def tick_until(loop: c.Controller, done: Callable[[], bool], rounds: int) -> None:
    """Controller rounds, 0.1 s apart, until done() holds or `rounds` have run."""
    for _ in range(rounds):
        await loop.tick()
        if done():
            return
        await asyncio.sleep(0.1)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 120))


ADAPT = {"adapt": {"minimum": 1, "maximum": 4}}


def test_a_policy_is_read_from_its_annotation_and_bad_ones_are_refused() -> None:
    assert c.Policy.parse('{"minimum": 0, "maximum": 5}') == c.Policy(0, 5)
    assert c.Policy.parse('{"maximum": 2}') == c.Policy(0, 2)
    assert c.Policy.parse(c.Policy(1, 3).to_json()) == c.Policy(1, 3)
    for bad, why in [
        ("5", "must be"),
        ("{", "not JSON"),
        ('{"minimum": 3, "maximum": 2}', "minimum <= maximum"),
        ('{"maximum": -1}', "counts"),
        ('{"maximum": 1.5}', "counts"),
        ('{"maximum": true}', "counts"),
        ('{"max": 3}', "must be"),
    ]:
        with pytest.raises(ValueError, match=why):
            c.Policy.parse(bad)
    assert c.Policy(1, 4).clamp(0) == 1 and c.Policy(1, 4).clamp(9) == 4 and c.Policy(1, 4).clamp(2) == 2


def test_the_controllers_names_are_the_clusters() -> None:
    assert c.root_name(NAME) == labels.component_name(NAME, "scheduler")
    assert c.worker_name(NAME) == labels.component_name(NAME, "worker")
    assert (c.CLUSTER_LABEL, c.COMPONENT_LABEL) == (labels.LABEL_CLUSTER, labels.LABEL_COMPONENT)


def test_queued_work_scales_up_at_once_within_the_maximum() -> None:
    async def test() -> None:
        async with dask(1, **ADAPT) as (scheduler, _, kube), Client(scheduler.address, asynchronous=True) as client:
            futures = client.map(lambda x: __import__("time").sleep(0.5) or x, range(40), pure=False)
            loop = controller(scheduler, kube)
            await tick_until(loop, lambda: kube.replicas > 1, 50)
            assert kube.replicas == 4  # 40 tasks of 0.5 s want more than 4: the maximum holds
            assert ("patch", "Deployment", "demo-worker") in kube.calls
            await client.cancel(futures)  # the decision is made: no need to sit out 20 s of sleeps

    run(test)


def test_scale_down_waits_then_retires_the_chosen_workers_and_removes_exactly_their_pods() -> None:
    async def test() -> None:
        async with (
            dask(3, **ADAPT) as (scheduler, workers, kube),
            Client(scheduler.address, asynchronous=True) as client,
        ):
            data = client.map(lambda x: bytes(1000) * x, range(1, 31), pure=False)
            await client.gather(data)
            held = {w.address for w in workers if w.data}
            assert len(held) == 3  # every worker holds some of the data
            loop = controller(scheduler, kube)
            for _ in range(c.SCALE_DOWN_TICKS - 1):
                await loop.tick()
            assert kube.replicas == 3 and not kube.retired()  # hysteresis: not yet
            await loop.tick()
            assert kube.replicas == 1
            survivor = {ws.host for ws in scheduler.workers.values()}
            assert len(survivor) == 1
            # The two pods that go are those of the retired workers: not the survivor's.
            retired = kube.retired()
            assert len(retired) == 2
            assert {kube.pods()[p]["status"]["podIP"] for p in retired}.isdisjoint(survivor)
            # Their data moved first: every key is still held, by the survivor.
            assert len(await client.gather(data)) == 30
            assert all(holders for holders in (await client.who_has(data)).values())

    run(test)


def test_pods_whose_worker_has_not_joined_go_first() -> None:
    async def test() -> None:
        async with dask(1, **ADAPT) as (scheduler, _, kube):
            starting = kube.add_pod(None)
            kube.patch("Deployment", "demo-worker", {"spec": {"replicas": 2}})
            loop = controller(scheduler, kube)
            for _ in range(c.SCALE_DOWN_TICKS):
                await loop.tick()
            assert kube.retired() == {starting}
            assert kube.replicas == 1 and len(scheduler.workers) == 1

    run(test)


def test_a_worker_whose_data_has_nowhere_to_go_keeps_its_pod() -> None:
    async def test() -> None:
        async with (
            dask(1, adapt={"minimum": 0, "maximum": 2}) as (scheduler, _, kube),
            Client(scheduler.address, asynchronous=True) as client,
        ):
            data = client.submit(bytes, 1000)
            await data
            loop = controller(scheduler, kube)
            await loop.scale_down(c.WorkerGroup(kube.objects[("Deployment", "demo-worker")]), 1)
            assert kube.replicas == 1 and not kube.retired()
            assert len(scheduler.workers) == 1 and await data == bytes(1000)

    run(test)


def test_without_a_policy_the_workers_are_left_alone() -> None:
    async def test() -> None:
        async with dask(2) as (scheduler, _, kube):
            loop = controller(scheduler, kube)
            for _ in range(c.SCALE_DOWN_TICKS + 1):
                await loop.tick()
            assert kube.replicas == 2 and not kube.retired()
            assert not [call for call in kube.calls if call[:2] == ("patch", "Pod")]

    run(test)


def test_a_bad_annotation_is_ignored_and_a_failing_api_never_stops_the_scheduler() -> None:
    async def test() -> None:
        async with dask(1) as (scheduler, _, kube):
            kube.patch("Deployment", "demo-worker", {"metadata": {"annotations": {c.ADAPT_ANNOTATION: "{nope"}}})
            loop = controller(scheduler, kube)
            await loop.tick()
            assert kube.replicas == 1
            kube.failing = True
            await loop.tick()  # logged, not raised
            assert scheduler.status.name == "running"

    run(test)


def test_an_api_server_that_does_not_answer_is_one_warning_then_one_line_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test() -> None:
        async with dask(1) as (scheduler, _, kube):
            loop = controller(scheduler, kube)
            await loop.tick()
            with caplog.at_level(logging.WARNING, logger=c.logger.name):
                kube.failing = True
                for _ in range(3):
                    await loop.tick()
                kube.failing = False
                await loop.tick()
            lines = [record.getMessage() for record in caplog.records if record.name == c.logger.name]
            assert lines[0] == (
                "minimaldask controller: the Kubernetes API server does not answer "
                "(<urlopen error [Errno 111] Connection refused>); scaling and the idle check wait for it, "
                "the cluster runs on"
            )
            assert re.fullmatch(
                r"minimaldask controller: the Kubernetes API server answers again after \d+ s; "
                r"scaling goes on",
                lines[1],
            )
            assert len(lines) == 2 and not [record for record in caplog.records if record.exc_info]
            assert scheduler.status.name == "running"

    run(test)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), True),
        (TimeoutError("The read operation timed out"), True),
        (urllib.error.HTTPError("https://api", 503, "Service Unavailable", None, None), True),  # type: ignore[arg-type]
        (urllib.error.HTTPError("https://api", 403, "Forbidden", None, None), False),  # type: ignore[arg-type]
        (KeyError("spec"), False),
    ],
)
def test_only_an_absent_api_server_is_an_outage(error: Exception, unavailable: bool) -> None:
    assert c.api_unavailable(error) is unavailable


def test_an_idle_cluster_deletes_its_root_but_not_while_a_client_is_connected() -> None:
    async def test() -> None:
        async with dask(1, idle_timeout=1) as (scheduler, _, kube):
            loop = controller(scheduler, kube)
            async with Client(scheduler.address, asynchronous=True):
                for _ in range(4):
                    await loop.tick()
                    await asyncio.sleep(0.5)
                assert ("Deployment", "demo-scheduler") in kube.objects
            await asyncio.sleep(0.2)  # the scheduler notices the client has gone
            for _ in range(6):
                await loop.tick()
                await asyncio.sleep(0.5)
            assert ("Deployment", "demo-scheduler") not in kube.objects
            assert [call for call in kube.calls if call[0] == "delete"] == [("delete", "Deployment", "demo-scheduler")]

    run(test)


def test_busy_work_keeps_a_cluster_with_an_idle_timeout() -> None:
    async def test() -> None:
        async with (
            dask(1, idle_timeout=1) as (scheduler, _, kube),
            Client(scheduler.address, asynchronous=True) as client,
        ):
            loop = controller(scheduler, kube)
            task = client.submit(__import__("time").sleep, 3, pure=False)
            await asyncio.sleep(0.2)
            for _ in range(5):
                await loop.tick()
                await asyncio.sleep(0.5)
            assert ("Deployment", "demo-scheduler") in kube.objects
            await task

    run(test)


def test_adoption_makes_the_root_the_owner_of_every_other_object_once() -> None:
    async def test() -> None:
        async with dask(1) as (scheduler, _, kube):
            root = kube.objects[("Deployment", "demo-scheduler")]
            loop = controller(scheduler, kube)
            await loop.tick()
            owned = {
                (kind, name)
                for (kind, name), obj in kube.objects.items()
                if obj["metadata"].get("ownerReferences") == [c.owner_reference(root)]
            }
            assert owned == {
                ("ServiceAccount", "demo-scheduler"),
                ("Role", "demo-scheduler"),
                ("RoleBinding", "demo-scheduler"),
                ("Service", "demo-scheduler"),
                ("NetworkPolicy", "demo-dask"),
                ("Deployment", "demo-worker"),
            }
            workers = kube.list("Deployment", f"{c.CLUSTER_LABEL}={NAME},{c.COMPONENT_LABEL}=worker")
            assert await loop.adopt(kube.get("Deployment", "demo-scheduler") or {}, workers) == 0

    run(test)


def test_the_role_grants_exactly_the_calls_the_controller_makes() -> None:
    rules = c.permissions(NAME)
    with_group = c.permissions(NAME, ["gpu"])
    assert next(r.get("resourceNames") for r in with_group if r["verbs"] == ["get", "patch"]) == [
        "demo-scheduler",
        "demo-worker",
        "demo-worker-gpu",
    ]
    granted = {(rule["resources"][0], verb) for rule in rules for verb in rule["verbs"]}
    assert granted == {
        ("deployments", "list"),
        ("deployments", "get"),
        ("deployments", "patch"),
        ("deployments", "delete"),
        ("pods", "list"),
        ("pods", "patch"),
        *(
            (plural, verb)
            for plural in ("services", "serviceaccounts", "roles", "rolebindings", "networkpolicies", "secrets")
            for verb in ("get", "patch")
        ),
    }
    assert json.dumps(rules).count('"resourceNames"') == 8
    # Of the Secrets, its own TLS Secret only (adopted, so that it goes with the cluster).
    secret = next(rule for rule in rules if rule["resources"] == ["secrets"])
    assert secret == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get", "patch"],
        "resourceNames": ["demo-tls"],
    }
    policy = next(rule for rule in rules if rule["resources"] == ["networkpolicies"])
    assert policy == {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["get", "patch"],
        "resourceNames": ["demo-dask"],
    }


def test_for_a_cluster_of_one_group_the_target_is_distributeds_adaptive_target() -> None:
    async def test() -> None:
        async with dask(2) as (scheduler, _, kube), Client(scheduler.address, asynchronous=True) as client:
            group = c.WorkerGroup(kube.objects[("Deployment", "demo-worker")])
            workers = list(scheduler.workers.values())
            counts = c.work_filter(group, [group])
            targets = [(c.group_target(scheduler, workers, counts), scheduler.adaptive_target())]
            futures = client.map(lambda x: __import__("time").sleep(0.5) or x, range(60), pure=False)
            await asyncio.sleep(0.5)  # queued and processing
            targets.append((c.group_target(scheduler, workers, counts), scheduler.adaptive_target()))
            await client.cancel(futures)  # the busy state is measured: no need to sit out 15 s of sleeps
            while scheduler.tasks or any(ws.processing for ws in workers):
                await asyncio.sleep(0.05)
            targets.append((c.group_target(scheduler, workers, counts), scheduler.adaptive_target()))
            assert [ours for ours, _ in targets] == [theirs for _, theirs in targets]
            assert targets[1][0] > 2 and targets[2][0] <= 2  # the states differ: busy, then idle

    run(test)


GPU_GROUP = {"worker_groups": {"gpu": {"n_workers": 0, "dask_resources": {"GPU": 1}, "adapt": {"maximum": 2}}}}


def test_work_needing_a_groups_resources_scales_only_that_group_from_zero_and_back() -> None:
    async def test() -> None:
        async with (
            dask(1, adapt={"minimum": 1, "maximum": 3}, **GPU_GROUP) as (scheduler, _, kube),
            Client(scheduler.address, asynchronous=True) as client,
        ):
            loop = controller(scheduler, kube)
            gpu_task = client.submit(lambda: "on the GPU", resources={"GPU": 1}, pure=False)
            await tick_until(loop, lambda: kube.group_replicas("gpu") > 0, 20)  # unrunnable until a GPU=1 worker joins
            assert (kube.group_replicas("gpu"), kube.replicas) == (1, 1)
            # The pod the ReplicaSet would create: a worker with the group's resources, at its IP.
            async with Worker(scheduler.address, host="127.0.0.9", nthreads=1, resources={"GPU": 1}):
                kube.add_pod("127.0.0.9", group="gpu")
                assert await gpu_task == "on the GPU"
                for _ in range(c.SCALE_DOWN_TICKS):
                    await loop.tick()
                assert (kube.group_replicas("gpu"), kube.replicas) == (0, 1)
                gpu_pods = {n for n, p in kube.pods().items() if p["metadata"]["labels"].get(c.GROUP_LABEL)}
                assert kube.retired() == gpu_pods  # the GPU worker's pod, not the default group's

    run(test)


def test_work_without_resources_scales_the_groups_without_resources() -> None:
    async def test() -> None:
        async with (
            dask(1, adapt={"minimum": 1, "maximum": 3}, **GPU_GROUP) as (scheduler, _, kube),
            Client(scheduler.address, asynchronous=True) as client,
        ):
            futures = client.map(lambda x: __import__("time").sleep(0.5) or x, range(40), pure=False)
            loop = controller(scheduler, kube)
            await tick_until(loop, lambda: kube.replicas > 1, 50)
            assert (kube.replicas, kube.group_replicas("gpu")) == (3, 0)
            await client.cancel(futures)

    run(test)


def test_a_groups_pods_are_not_the_default_groups() -> None:
    kube = fake_kube(1, **GPU_GROUP)
    default, gpu = (
        c.WorkerGroup(kube.objects[("Deployment", labels.worker_deployment_name(NAME, g))]) for g in (None, "gpu")
    )
    kube.add_pod("127.0.0.2")
    kube.add_pod("127.0.0.3", group="gpu")
    assert [p["status"]["podIP"] for p in kube.list("Pod", default.selector)] == ["127.0.0.2"]
    assert [p["status"]["podIP"] for p in kube.list("Pod", gpu.selector)] == ["127.0.0.3"]
    assert (default.resources, gpu.resources) == ({}, {"GPU": 1.0})


def job_kube(owned_by_job: bool) -> FakeKube:
    """A batch job's objects: as a GitOps apply leaves them (no owners), or as run_job applies
    them (every cluster object owned by the runner Job)."""
    job = JobSpec(cluster=cluster_spec(name=NAME, image="example/debian:1"), command=["python", "job.py"])
    kube = FakeKube(render_job(job))
    runner = kube.objects[("Job", "demo-runner")]
    for (kind, _), obj in kube.objects.items():
        if owned_by_job and kind != "Job":
            obj["metadata"]["ownerReferences"] = [c.owner_reference(runner)]
    return kube


@pytest.mark.parametrize("owned_by_job", [False, True], ids=["gitops-apply", "run-job"])
def test_a_jobs_cluster_is_owned_through_its_root_by_the_job_and_deleted_when_the_job_ends(owned_by_job: bool) -> None:
    async def test() -> None:
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0") as scheduler:
            kube = job_kube(owned_by_job)
            runner = kube.objects[("Job", "demo-runner")]
            loop = controller(scheduler, kube)
            await loop.tick()
            root = kube.objects[("Deployment", "demo-scheduler")]
            assert root["metadata"]["ownerReferences"] == [c.owner_reference(runner)]
            for (kind, name), obj in kube.objects.items():
                if (kind, name) not in {("Job", "demo-runner"), ("Deployment", "demo-scheduler")}:
                    # The root alone: deleting it deletes them (an object goes when all its owners have).
                    assert obj["metadata"]["ownerReferences"] == [c.owner_reference(root)], (kind, name)
            await loop.tick()
            assert ("Deployment", "demo-scheduler") in kube.objects  # the Job runs: the cluster stays
            runner["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
            await loop.tick()
            assert ("Deployment", "demo-scheduler") not in kube.objects
            assert ("Job", "demo-runner") in kube.objects  # its record stays for its TTL
            assert [call for call in kube.calls if call[0] == "delete"] == [("delete", "Deployment", "demo-scheduler")]

    run(test)


def test_a_plain_cluster_reads_no_job() -> None:
    async def test() -> None:
        async with dask(0) as (scheduler, _, kube):
            await controller(scheduler, kube).tick()
            assert not [call for call in kube.calls if call[1] == "Job"]

    run(test)


@pytest.mark.parametrize(
    ("conditions", "finished"),
    [
        ([], None),
        ([{"type": "SuccessCriteriaMet", "status": "True"}], None),
        ([{"type": "Complete", "status": "True"}], "Complete"),
        ([{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}], "Failed"),
        ([{"type": "Failed", "status": "False"}], None),
    ],
)
def test_a_job_has_finished_on_its_final_condition_only(conditions: list[Obj], finished: str | None) -> None:
    assert c.job_finished({"status": {"conditions": conditions}}) == finished
