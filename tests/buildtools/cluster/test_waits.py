"""Readiness predicates and failure diagnostics on pod/rollout objects shaped as the API
returns them (a kwok node cannot pull or crash, so these states are written out here)."""

import time

import pytest

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
from buildtools.errors import AdmissionError, CrashLoopError, ImagePullError, WaitTimeout


def pod(waiting_reason: str, message: str = "", init: bool = False) -> dict:
    status = {"name": "dask", "image": "r/dask:1", "state": {"waiting": {"reason": waiting_reason, "message": message}}}
    key = "initContainerStatuses" if init else "containerStatuses"
    return {"metadata": {"name": "c-worker-abc"}, "status": {key: [status]}}


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
def test_pull_failures_name_pod_reason_and_image(reason: str) -> None:
    failure = pod_failure(pod(reason, "manifest for r/dask:1 not found: manifest unknown"))
    assert isinstance(failure, ImagePullError)
    assert (
        str(failure) == f"pod c-worker-abc: {reason}: image r/dask:1: manifest for r/dask:1 not found: manifest unknown"
    )


def test_pull_failure_of_a_prepuller_init_container() -> None:
    assert isinstance(pod_failure(pod("ImagePullBackOff", init=True)), ImagePullError)


def test_crash_loop_carries_the_last_log_lines() -> None:
    failure = pod_failure(pod("CrashLoopBackOff", "back-off 10s"), logs=lambda p, c: f"{p}/{c}: Traceback ...")
    assert isinstance(failure, CrashLoopError)
    assert "last log lines:\nc-worker-abc/dask: Traceback ..." in str(failure)


def test_a_starting_pod_is_no_failure() -> None:
    assert pod_failure(pod("ContainerCreating")) is None
    assert pod_failure({"metadata": {"name": "p"}, "status": {}}) is None


def test_unschedulable_carries_the_schedulers_message() -> None:
    message = "0/6 nodes are available: 6 node(s) didn't match Pod's node affinity/selector."
    p = {
        "metadata": {"name": "p"},
        "status": {
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]
        },
    }
    problem = unschedulable(p)
    assert problem is not None and problem.detail == message


def test_rollout_states() -> None:
    deployment = {
        "kind": "Deployment",
        "metadata": {"generation": 2},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3},
    }
    assert rollout_state(deployment) == (True, "3/3 replicas ready")
    stale = {**deployment, "metadata": {"generation": 3}}
    assert rollout_state(stale)[0] is False  # the controller has not seen the new spec yet
    daemonset = {
        "kind": "DaemonSet",
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 5, "numberReady": 4, "updatedNumberScheduled": 5},
    }
    assert rollout_state(daemonset) == (False, "4/5 nodes ready")


def test_wait_reports_each_new_state_and_gives_up_with_the_last() -> None:
    states = iter([(False, "0/2 ready"), (False, "0/2 ready"), (False, "1/2 ready")])
    seen: list[str] = []
    with pytest.raises(WaitTimeout, match=r"waiting for thing; last state: 1/2 ready"):
        wait_until(lambda: next(states, (False, "1/2 ready")), "thing", 0.3, seen.append, interval=0.05)
    assert seen == ["waiting for thing: 0/2 ready", "waiting for thing: 1/2 ready"]


def running_pod(ready: str, deleting: bool = False) -> dict:
    metadata = {"name": "c-scheduler-abc", **({"deletionTimestamp": "2026-12-01T00:00:00Z"} if deleting else {})}
    return {"metadata": metadata, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}}


def test_a_running_pod_is_ready_only_when_its_ready_condition_is_true_and_it_is_not_terminating() -> None:
    assert pod_is_ready(running_pod("True"))
    assert not pod_is_ready(running_pod("False"))
    assert not pod_is_ready(running_pod("True", deleting=True))
    assert not pod_is_ready({"metadata": {"name": "p"}, "status": {"phase": "Pending"}})


def test_waits_sharing_a_deadline_get_only_what_is_left() -> None:
    deadline = Deadline.after(0.3)
    assert wait_until(lambda: (True, "done"), "first", deadline, lambda _: None) == "done"
    time.sleep(0.3)
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"timed out after 0\.3 s waiting for second"):
        wait_until(lambda: (False, "not yet"), "second", deadline, lambda _: None, interval=0.05)
    assert time.monotonic() - started < 0.2  # checked once, not given its own 0.3 s


QUOTA_MESSAGE = (
    'pods "c-worker-5d8f7b9c4-x2x7q" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1'
)


def test_a_replica_failure_names_the_deployment_and_the_servers_reason() -> None:
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "c-worker", "namespace": "ns"},
        "status": {
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA_MESSAGE},
            ]
        },
    }
    failure = replica_failure(deployment)
    assert isinstance(failure, AdmissionError)
    assert str(failure) == f"Deployment ns/c-worker: ReplicaFailure: FailedCreate: {QUOTA_MESSAGE}"
    deployment["status"]["conditions"][1]["status"] = "False"  # healed
    assert replica_failure(deployment) is None
    assert replica_failure({"kind": "Deployment", "metadata": {"name": "x"}}) is None


def event(reason: str, kind: str, name: str, message: str, count: int = 1, when: str = "") -> dict:
    return {
        "reason": reason,
        "type": "Warning",
        "involvedObject": {"kind": kind, "name": name},
        "message": message,
        "count": count,
        "lastTimestamp": when,
    }


def test_warnings_about_an_object_and_what_it_owns() -> None:
    events = [
        event("FailedCreate", "ReplicaSet", "c-worker-5d8f7b9c4", QUOTA_MESSAGE, count=3),
        event("FailedScheduling", "Pod", "c-scheduler-abc-1", "0/3 nodes are available"),
        event("BackOff", "Pod", "c-workerless-1", "not ours: another object's name starts the same"),
        event("FailedCreate", "ReplicaSet", "c-worker-5d8f7b9c4", QUOTA_MESSAGE, count=3),
    ]
    assert warnings_about(events, "c-worker") == f"FailedCreate ReplicaSet/c-worker-5d8f7b9c4: {QUOTA_MESSAGE} (x3)"
    assert warnings_about(events, "c-scheduler") == "FailedScheduling Pod/c-scheduler-abc-1: 0/3 nodes are available"
    assert warnings_about(events, "other") == ""
    many = [event("BackOff", "Pod", f"c-worker-{i}", "back-off") for i in range(9)]
    assert (
        warnings_about(many, "c-worker", limit=2)
        == "BackOff Pod/c-worker-7: back-off; BackOff Pod/c-worker-8: back-off"
    )


def test_a_timeout_ends_with_the_explanation() -> None:
    with pytest.raises(WaitTimeout, match=r"last state: 0/2 ready; warnings: FailedCreate ReplicaSet/x: quota$"):
        wait_until(
            lambda: (False, "0/2 ready"),
            "thing",
            0.05,
            lambda _: None,
            explain=lambda: "FailedCreate ReplicaSet/x: quota",
        )
    with pytest.raises(WaitTimeout, match=r"last state: 0/2 ready$"):
        wait_until(lambda: (False, "0/2 ready"), "thing", 0.05, lambda _: None, explain=lambda: "")
