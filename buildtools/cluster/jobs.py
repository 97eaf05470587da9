"""Batch jobs: a command run by a Kubernetes Job against a Dask cluster of its own, which is gone
when the command ends (docs/JOBS.md).

No operator: the runner Job owns the cluster. The controller in the cluster's scheduler makes the
Job the owner of the cluster's root and deletes the cluster once the Job has finished; the Job's
ttlSecondsAfterFinished then deletes the Job (the garbage collector takes whatever is left).
So a job's cluster ends with its job also when the caller has gone, or crashed half-way through
the start: every object is created owned by the Job.

render_job -> kube (the Job first, then the cluster's objects, owned by it) -> the cluster's
rollout -> the runner's start, its log as it runs, and its end.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from buildtools.cluster import controller, labels, preflight
from buildtools.cluster.credentials import new_secret
from buildtools.cluster.deploy import CLEANUP_TIMEOUT, DEFAULT_TIMEOUT, check_namespace, given_fields
from buildtools.cluster.job_state import JobStatus, runner_pods, started, status_of
from buildtools.cluster.kinds import DEPLOYMENT, JOB
from buildtools.cluster.kube import Kube
from buildtools.cluster.kubetypes import DnsLabel, validate
from buildtools.cluster.lifecycle import Workload, check_pods, delete_dask_cluster, wait_rollout
from buildtools.cluster.render import render_job
from buildtools.cluster.specs import ClusterSpec, JobSpec, cluster_spec
from buildtools.cluster.waits import Deadline, Progress, quiet, wait_until
from buildtools.errors import ConfigError, JobFailed, MinimalDaskError

__all__ = ["JobStatus", "job_status", "run_job"]

RUNNER_CONTAINER = "runner"
# How often the runner's pods are looked at while none runs (its start, a retry's start).
POLL_INTERVAL = 0.5
LAST_LINES = 20


def job_status(
    name: str,
    namespace: str = "default",
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    kube: Kube | None = None,
) -> JobStatus:
    """The status of job `name` (run with wait=False, or by another process)."""
    validate(DnsLabel, "name", name)
    kube = kube or Kube.connect(kubeconfig, context)
    job = kube.get(JOB, controller.runner_name(name), namespace)
    if job is None:
        raise ConfigError(
            f"no job {name} in namespace {namespace} "
            "(a finished job is deleted ttl_seconds_after_finished after it ends)"
        )
    return status_of(job, runner_pods(kube, name, namespace))


def job_spec(
    command: Sequence[str],
    cluster: ClusterSpec,
    *,
    runner_image: str | None = None,
    runner_env: Mapping[str, str] | None = None,
    runner_resources: Mapping[str, Any] | None = None,
    backoff_limit: int | None = None,
    active_deadline_seconds: int | None = None,
    ttl_seconds_after_finished: int | None = None,
) -> JobSpec:
    """A JobSpec from run_job's arguments (None: JobSpec's default)."""
    given = {
        "image": runner_image,
        "env": runner_env,
        "resources": runner_resources,
        "backoff_limit": backoff_limit,
        "active_deadline_seconds": active_deadline_seconds,
        "ttl_seconds_after_finished": ttl_seconds_after_finished,
    }
    fields = {key: value for key, value in given.items() if value is not None}
    return validate(JobSpec, "", {"cluster": cluster, "command": tuple(command), **fields})


def print_line(line: str) -> None:
    """The runner's output reaches the caller's stdout, as a child process's would."""
    print(line, flush=True)


def run_job(
    command: Sequence[str],
    name: str | None = None,
    *,
    spec: ClusterSpec | Mapping[str, Any] | None = None,
    runner_image: str | None = None,
    runner_env: Mapping[str, str] | None = None,
    runner_resources: Mapping[str, Any] | None = None,
    backoff_limit: int | None = None,
    active_deadline_seconds: int | None = None,
    ttl_seconds_after_finished: int | None = None,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    keep_on_failure: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
    on_progress: Progress | None = None,
    on_log: Callable[[str], None] | None = None,
    **fields: Any,
) -> JobStatus:
    """Run `command` in a Kubernetes Job against a new Dask cluster of its own (docs/JOBS.md).

    The cluster is `spec` with `name` and `fields` over it, as start_dask_cluster takes them
    (adapt, worker_groups and idle_timeout included); the runner gets DASK_SCHEDULER_ADDRESS
    (and the TLS client settings of a TLS cluster), so `distributed.Client()` in it connects.
    `timeout` bounds the start (checks, the cluster's rollout, the runner's start); the run
    itself is bounded by `active_deadline_seconds` only. A job of the same name that has
    finished is replaced; one that runs is refused.

    With `wait` the runner's log goes to `on_log` (default: stdout) as it runs, and the job's
    end is returned, or raised as JobFailed (its last log lines in the message); the caller's
    exit does not stop the job. Without `wait`, the job's status right after its start:
    job_status(name) tells later. Either way its cluster is deleted when the command ends,
    and the Job `ttl_seconds_after_finished` later.
    """
    deadline = Deadline.after(timeout)
    cluster = cluster_spec(given_fields(spec, fields) | ({"name": name} if name is not None else {}))
    job = job_spec(
        command,
        cluster,
        runner_image=runner_image,
        runner_env=runner_env,
        runner_resources=runner_resources,
        backoff_limit=backoff_limit,
        active_deadline_seconds=active_deadline_seconds,
        ttl_seconds_after_finished=ttl_seconds_after_finished,
    )
    progress = on_progress or quiet
    kube = Kube.connect(kubeconfig, context)
    check_namespace(kube, cluster.namespace)
    replace_finished(kube, cluster, progress)
    start_job(kube, job, deadline, wait=wait, keep_on_failure=keep_on_failure, progress=progress)
    if not wait:
        return job_status(job.name, cluster.namespace, kube=kube)
    try:
        status, last = follow_job(kube, job, on_log or print_line, progress)
    except MinimalDaskError as error:
        error.add_note(f"the job goes on in the cluster: buildtools job-status {job.name} -n {cluster.namespace}")
        raise
    if status.state == "failed":
        raise JobFailed(job.name, status.pod, status.exit_code, status.reason, "\n".join(last).rstrip())
    return status


def replace_finished(kube: Kube, cluster: ClusterSpec, progress: Progress) -> None:
    """Make room for a new run: a finished job of this name (and what is left of its cluster)
    is deleted; a running one, or a cluster of this name that is no job's, refuses the run."""
    name, namespace = cluster.name, cluster.namespace
    existing = kube.get(JOB, controller.runner_name(name), namespace)
    root = kube.get(DEPLOYMENT, controller.root_name(name), namespace)
    if existing is not None and not controller.job_finished(existing):
        raise ConfigError(
            f"job {name} is still running in namespace {namespace}: wait for it (buildtools job-status {name}) "
            f"or stop it (buildtools down {name})"
        )
    a_jobs = root is not None and controller.JOB_ANNOTATION in (root["metadata"].get("annotations") or {})
    if existing is None and root is not None and not a_jobs:
        raise ConfigError(f"a cluster named {name} runs in namespace {namespace}, not a job's: choose another name")
    if existing is not None or root is not None:
        progress(f"job {name}: removing its finished run first")
        delete_dask_cluster(name, namespace, timeout=CLEANUP_TIMEOUT, kube=kube, on_progress=progress)


def start_job(
    kube: Kube, job: JobSpec, deadline: Deadline, *, wait: bool, keep_on_failure: bool, progress: Progress
) -> None:
    """Create the runner Job, then the cluster's objects owned by it, and (`wait`) wait for the
    cluster and the runner's start. A failed start removes what it created (unless keep_on_failure)."""
    namespace = job.cluster.namespace
    runner, *cluster = render_job(job)
    preflight.check_permissions(kube, namespace, prepull=False)  # before the Secret's lookup
    if (secret := new_secret(kube, job.cluster)) is not None:
        cluster.insert(0, secret)
    preflight.dry_run(kube, [runner, *cluster], deadline, progress)
    progress(f"applying Job {namespace}/{runner['metadata']['name']}")
    owner = controller.owner_reference(kube.apply(runner))
    try:
        for obj in cluster:
            obj["metadata"]["ownerReferences"] = [owner]  # the controller re-parents them to the root
            progress(f"applying {obj['kind']} {namespace}/{obj['metadata']['name']}")
            kube.apply(obj)
        if wait:
            # The scheduler only: once it answers the runner may finish at once, and the
            # controller then deletes the cluster, workers included, while a wait for them runs.
            wait_rollout(kube, Workload.component(job.name, namespace, "scheduler"), deadline, progress)
            wait_runner_started(kube, job, deadline, progress)
    except BaseException as failure:
        if not keep_on_failure:
            progress(f"start failed: removing job {job.name} and its cluster")
            try:
                delete_dask_cluster(job.name, namespace, timeout=CLEANUP_TIMEOUT, kube=kube, on_progress=progress)
            except MinimalDaskError as cleanup:
                failure.add_note(f"cleanup of job {job.name} failed too: {cleanup}")
        raise


def wait_runner_started(kube: Kube, job: JobSpec, deadline: Deadline, progress: Progress) -> None:
    """Until the runner's command has started (its installs done, the scheduler answering), failing
    fast on a pod that cannot start (an image that cannot be pulled, say)."""
    name, namespace = job.name, job.cluster.namespace

    def runner_started() -> tuple[bool, str]:
        check_pods(kube, namespace, labels.label_selector(name, "runner"))
        pods = runner_pods(kube, name, namespace)
        found = kube.get(JOB, controller.runner_name(name), namespace)
        if found is None or controller.job_finished(found):
            return True, "finished"  # (or deleted): follow_job tells how
        if pods and started(pods[-1]):
            return True, f"pod {pods[-1]['metadata']['name']} started"
        return False, (pods[-1].get("status") or {}).get("phase", "Pending") if pods else "no pod yet"

    wait_until(runner_started, f"the runner of job {namespace}/{name}", deadline, progress, POLL_INTERVAL)


def follow_job(
    kube: Kube, job: JobSpec, on_log: Callable[[str], None], progress: Progress
) -> tuple[JobStatus, list[str]]:
    """Follow the log of each runner pod in turn (a retry is a new pod) until the Job has
    finished; its status and the last lines of the log (kept here: the TTL may delete the pod)."""
    name, namespace = job.name, job.cluster.namespace
    followed: set[str] = set()
    last: deque[str] = deque(maxlen=LAST_LINES)
    while True:
        found = kube.get(JOB, controller.runner_name(name), namespace)
        if found is None:
            raise JobFailed(name, None, None, "its Job was deleted while it ran", "")
        pods = runner_pods(kube, name, namespace)
        status = status_of(found, pods)
        unread = [p for p in pods if p["metadata"]["name"] not in followed and started(p)]
        if status.state in ("succeeded", "failed") and not unread:
            progress(status.summary)
            return status, list(last)
        if not unread:
            time.sleep(POLL_INTERVAL)
            continue
        pod = unread[0]["metadata"]["name"]
        progress(f"job {name}: the log of pod {pod}")
        for line in kube.follow_log(namespace, pod, RUNNER_CONTAINER):
            on_log(line)
            last.append(line)
        followed.add(pod)
