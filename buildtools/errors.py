"""The project's exceptions: the CLI prints their message on one line and exits non-zero."""


class MinimalDaskError(Exception):
    """A failure the user can act on; its message says what and how to fix it."""

    exit_code = 1


class ConfigError(MinimalDaskError):
    """An image definition, option or argument is invalid."""

    exit_code = 2


class EngineError(MinimalDaskError):
    """The Docker engine, buildx or emulation is missing or failed."""


class RegistryError(MinimalDaskError):
    """The registry cannot be reached or does not hold what was asked for."""


class BuildError(MinimalDaskError):
    """A build failed."""


class BudgetExceeded(MinimalDaskError):
    """One or more images are larger than their budget."""

    exit_code = 3


class DeployError(MinimalDaskError):
    """A Kubernetes deploy failed; the message names the object and the reason."""


class ForbiddenError(DeployError):
    """The Kubernetes API refused an operation (RBAC); see docs/RBAC.md for the Role needed."""


class PodFailure(DeployError):
    """A pod cannot start; the message names the pod, the reason and the details."""

    def __init__(self, pod: str, reason: str, detail: str) -> None:
        self.pod, self.reason, self.detail = pod, reason, detail
        super().__init__(f"pod {pod}: {reason}: {detail}")


class ImagePullError(PodFailure):
    """The image cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName)."""


class CrashLoopError(PodFailure):
    """A container keeps crashing (CrashLoopBackOff); the detail holds its last log lines."""


class UnschedulableError(PodFailure):
    """No node can take the pod; the detail is the scheduler's message."""


class WaitTimeout(DeployError):
    """A wait reached its deadline; the message says what it waited for and the last state."""


class AdmissionError(DeployError):
    """The API server admitted an object but not its pods, or rejected it outright: a
    ResourceQuota, LimitRange, PodSecurity or webhook refusal (at the dry-run, or as a
    Deployment's ReplicaFailure); the message names the object and the server's reason."""


class VersionMismatchError(MinimalDaskError):
    """The client and the cluster cannot work together (e.g. different Python minors)."""


class JobFailed(MinimalDaskError):
    """A batch job's command failed (a non-zero exit, its deadline, its retries used up); the
    message names the runner's pod and ends with its last log lines. The CLI exits with the
    command's own exit code when there is one."""

    def __init__(self, job: str, pod: str | None, exit_code: int | None, reason: str, last_lines: str) -> None:
        self.job, self.pod, self.reason, self.last_lines = job, pod, reason, last_lines
        if exit_code:
            self.exit_code = exit_code
        where = f"pod {pod}" if pod else "no runner pod"
        tail = f"; its last lines:\n{last_lines}" if last_lines else ""
        super().__init__(f"job {job} failed ({where}): {reason}{tail}")
