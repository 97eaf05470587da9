"""A batch job's state, read from its runner Job and that Job's pods (jobs.py runs jobs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from buildtools.cluster import controller, labels
from buildtools.cluster.kinds import POD
from buildtools.cluster.kube import Kube

Obj = dict[str, Any]
State = Literal["pending", "running", "succeeded", "failed"]


@dataclass(frozen=True)
class JobStatus:
    """A job as its runner Job shows it."""

    name: str
    namespace: str
    state: State
    pod: str | None
    """The latest runner pod (a retry makes a new one)."""
    exit_code: int | None
    """The command's, once its latest pod has ended."""
    reason: str
    """Why it is in this state: the Job's final condition, or the runner pod's phase."""
    seconds: float | None
    """From the Job's start to its end (None while it runs)."""

    @property
    def summary(self) -> str:
        took = f" in {self.seconds:.0f} s" if self.seconds is not None else ""
        code = f", exit code {self.exit_code}" if self.exit_code is not None else ""
        return f"job {self.namespace}/{self.name}: {self.state}{took}{code} ({self.reason})"


def runner_pods(kube: Kube, name: str, namespace: str) -> list[Obj]:
    """The runner's pods, oldest first (one per attempt)."""
    pods = kube.list(POD, namespace, labels.label_selector(name, "runner"))
    return sorted(pods, key=lambda pod: (pod["metadata"].get("creationTimestamp") or "", pod["metadata"]["name"]))


def _container(pod: Obj) -> Obj:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0].get("state") or {})


def exit_code(pod: Obj) -> int | None:
    terminated = _container(pod).get("terminated")
    return None if terminated is None else int(terminated.get("exitCode", 0))


def started(pod: Obj) -> bool:
    """The runner's command has started (or already ended): its log is there to follow."""
    return bool({"running", "terminated"} & set(_container(pod)))


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def status_of(job: Obj, pods: list[Obj]) -> JobStatus:
    """A job's status from its runner Job and that Job's pods."""
    meta, status = job["metadata"], job.get("status") or {}
    latest = pods[-1] if pods else None
    finished = controller.job_finished(job)
    condition = next((c for c in status.get("conditions") or [] if c.get("type") == finished), {})
    if finished:
        state: State = "succeeded" if finished == "Complete" else "failed"
        reason = ": ".join(filter(None, (condition.get("reason"), condition.get("message")))) or finished
    else:
        running = latest is not None and started(latest)
        state = "running" if running else "pending"
        reason = (latest.get("status") or {}).get("phase", "Pending") if latest else "no runner pod yet"
    start = _time(status.get("startTime"))
    end = _time(status.get("completionTime") or condition.get("lastTransitionTime"))
    return JobStatus(
        name=meta["labels"][labels.LABEL_CLUSTER],
        namespace=meta["namespace"],
        state=state,
        pod=latest["metadata"]["name"] if latest else None,
        exit_code=exit_code(latest) if latest else None,
        reason=reason,
        seconds=(end - start).total_seconds() if start and end and finished else None,
    )
