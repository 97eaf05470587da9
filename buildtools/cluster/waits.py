"""Readiness predicates over plain API objects (dicts), and one bounded wait loop.

Predicates are pure so they can be tested on captured objects; the loop has a single
monotonic deadline, reports what it waits for, and names the last state when it gives up.
A Deadline may be shared by the waits of one operation (a cluster's two rollouts).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from buildtools.errors import (
    AdmissionError,
    CrashLoopError,
    ImagePullError,
    PodFailure,
    UnschedulableError,
    WaitTimeout,
)

Obj = dict[str, Any]
Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """The Progress of a caller who wants none."""


PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CRASH_FAILURES = {"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def _get(obj: Obj, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, dict) or obj.get(key) is None:
            return default
        obj = obj[key]
    return obj


def rollout_state(obj: Obj) -> tuple[bool, str]:
    """(ready, description) for a Deployment or a DaemonSet."""
    generation = _get(obj, "metadata", "generation", default=0)
    observed = _get(obj, "status", "observedGeneration", default=0)
    status = obj.get("status") or {}
    if obj.get("kind") == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        ready = status.get("numberReady", 0)
        updated = status.get("updatedNumberScheduled", 0)
        done = observed >= generation and ready == desired and updated == desired
        return done, f"{ready}/{desired} nodes ready"
    wanted = _get(obj, "spec", "replicas", default=1)
    ready = status.get("readyReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    done = observed >= generation and ready == wanted and updated == wanted and total == wanted
    return done, f"{ready}/{wanted} replicas ready"


def pod_is_ready(pod: Obj) -> bool:
    """Ready (its readiness probe passes) and not on its way out: where traffic may go."""
    conditions = _get(pod, "status", "conditions", default=[])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and not _get(pod, "metadata", "deletionTimestamp")


def pod_failure(pod: Obj, logs: Callable[[str, str], str] | None = None) -> PodFailure | None:
    """The failure a pod shows that will not heal by waiting, if any.

    Unschedulable is not among them (an autoscaler may still add a node): see unschedulable().
    """
    name = _get(pod, "metadata", "name", default="?")
    statuses = _get(pod, "status", "initContainerStatuses", default=[]) + _get(
        pod, "status", "containerStatuses", default=[]
    )
    for status in statuses:
        waiting = _get(status, "state", "waiting", default={})
        reason = waiting.get("reason", "")
        message = waiting.get("message", "") or ""
        if reason in PULL_FAILURES:
            return ImagePullError(name, reason, f"image {status.get('image', '?')}: {message}".strip(": "))
        if reason in CRASH_FAILURES:
            tail = logs(name, status.get("name", "")) if logs and reason == "CrashLoopBackOff" else ""
            detail = f"container {status.get('name')}: {message}".strip(": ")
            if tail:
                detail += "; last log lines:\n" + tail
            return CrashLoopError(name, reason, detail)
    return None


def unschedulable(pod: Obj) -> UnschedulableError | None:
    for condition in _get(pod, "status", "conditions", default=[]):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            name = _get(pod, "metadata", "name", default="?")
            return UnschedulableError(name, "Unschedulable", condition.get("message", ""))
    return None


def replica_failure(obj: Obj) -> AdmissionError | None:
    """A Deployment's ReplicaFailure: its controller cannot create the pods (a ResourceQuota,
    PodSecurity, a webhook refused them), which waiting does not heal."""
    for condition in _get(obj, "status", "conditions", default=[]):
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            namespace, name = (_get(obj, "metadata", key, default="?") for key in ("namespace", "name"))
            where = f"{obj.get('kind', '?')} {namespace}/{name}"
            return AdmissionError(
                f"{where}: ReplicaFailure: {condition.get('reason', '?')}: {condition.get('message', '')}".rstrip(": ")
            )
    return None


def warnings_about(events: list[Obj], name: str, limit: int = 5) -> str:
    """The last Warning events of the object `name` and of what it owns (named name-...), one
    line each: "FailedCreate ReplicaSet/x-1a2b: pods ... is forbidden: exceeded quota ... (x3)"."""
    lines = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("name") != name and not str(involved.get("name", "")).startswith(f"{name}-"):
            continue
        count = event.get("count") or (event.get("series") or {}).get("count") or 1
        line = f"{event.get('reason', '?')} {involved.get('kind', '?')}/{involved.get('name')}: "
        line += str(event.get("message") or event.get("note") or "").strip() + (f" (x{count})" if count > 1 else "")
        if line not in lines:
            lines.append(line)
    return "; ".join(lines[-limit:])


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock, `seconds` (the whole wait's, for its message) after it was set."""

    seconds: float
    end: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds)

    @classmethod
    def of(cls, timeout: float | Deadline) -> Deadline:
        """A deadline given (shared with other waits), or one `timeout` seconds from now."""
        return timeout if isinstance(timeout, Deadline) else cls.after(timeout)

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def wait_until(
    check: Callable[[], tuple[bool, str]],
    what: str,
    timeout: float | Deadline,
    on_progress: Callable[[str], None],
    interval: float = 1.0,
    on_timeout: Callable[[str], Exception | None] | None = None,
    explain: Callable[[], str] | None = None,
) -> str:
    """Poll check() until it reports done; report each new state; raise at the deadline.

    on_timeout may turn the last state into a more specific error (e.g. Unschedulable);
    explain's text (e.g. Warning events) ends the timeout's message.
    """
    deadline = Deadline.of(timeout)
    last = ""
    while True:
        done, state = check()
        if state != last:
            on_progress(f"waiting for {what}: {state}")
            last = state
        if done:
            return state
        if not deadline.left():
            specific = on_timeout(state) if on_timeout else None
            why = explain() if explain and not specific else ""
            raise specific or WaitTimeout(
                f"timed out after {deadline.seconds:.3g} s waiting for {what}; last state: {state}"
                + (f"; warnings: {why}" if why else "")
            )
        time.sleep(min(interval, deadline.left()))
