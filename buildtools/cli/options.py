"""The options more than one command takes, each declared once: the seven that choose a build
plan (`plan`, `build`), the six that make a cluster spec (`up`, `render cluster`), and a few
single ones. A command takes a group through `with_options`.

No `from __future__ import annotations` here: the groups' fields are read as typer options at
run time (inspect.signature), which needs their annotations evaluated, not strings.
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from buildtools.errors import ConfigError
from buildtools.images.config import load_images
from buildtools.images.plan import BASE_MODES, COMPRESSIONS, BaseMode, Compression, Plan, make_plan
from buildtools.settings import Settings

if TYPE_CHECKING:
    from buildtools.cluster.specs import ClusterSpec, JobSpec

PlatformOpt = Annotated[
    list[str] | None, typer.Option("--platform", "-p", help="Platform(s) (default: all of the image's).")
]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")]
KubeconfigOpt = Annotated[str | None, typer.Option(help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")]
ContextOpt = Annotated[str | None, typer.Option(help="Kubeconfig context (default: its current context).")]


@dataclass(frozen=True)
class PlanOptions:
    """What to build, where to push it and from which bases."""

    images: Annotated[
        list[str] | None, typer.Argument(help="Images (default: all under images/).", show_default=False)
    ] = None
    platform: PlatformOpt = None
    registry: Annotated[str | None, typer.Option(help="Registry to push to (default: $MINIMALDASK_REGISTRY).")] = None
    base: Annotated[
        str,
        typer.Option(
            help=f"Base image source: {' or '.join(BASE_MODES)} (the offline mirror).", envvar="MINIMALDASK_BASE"
        ),
    ] = "upstream"
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Extra tag(s) for each image's default-Python build, e.g. latest.")
    ] = None
    python: Annotated[
        list[str] | None, typer.Option("--python", help="Python minor(s), e.g. 3.13 (default: all of the image's).")
    ] = None
    compression: Annotated[
        str,
        typer.Option(
            help=f"Layer compression: {' or '.join(COMPRESSIONS)} (gzip builds get tags ending in -gzip, for engines "
            "older than Docker 23 / containerd 1.5).",
            envvar="MINIMALDASK_COMPRESSION",
        ),
    ] = "zstd"

    def resolve(self) -> tuple[Settings, Plan]:
        settings = Settings.load()
        plan = make_plan(
            load_images(self.images),
            self.registry or settings.registry,
            cast(BaseMode, self.base),  # make_plan names the valid ones when it is not
            self.platform,
            self.tag,
            self.python,
            cast(Compression, self.compression),
        )
        return settings, plan


@dataclass(frozen=True)
class SpecOptions:
    """A cluster's spec: a spec file's fields, which the other options override."""

    name: Annotated[
        str | None, typer.Argument(help="Cluster name (DNS-1035 label; default: the spec file's).", show_default=False)
    ] = None
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec", help="A YAML file of ClusterSpec fields (docs/CLUSTER-SPEC.md); the options override it."
        ),
    ] = None
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (default: the spec file's, else default).")
    ] = None
    image: Annotated[
        str | None,
        typer.Option(help="Image (default: the spec file's, else the Debian image of the local distributed)."),
    ] = None
    workers: Annotated[int | None, typer.Option(help="Number of workers (default: the spec file's, else 1).")] = None
    service_type: Annotated[
        str | None,
        typer.Option(help="ClusterIP, NodePort or LoadBalancer (default: the spec file's, else ClusterIP)."),
    ] = None

    adapt: Annotated[
        str | None,
        typer.Option(
            metavar="MIN:MAX",
            help="Scale the workers with the load between MIN and MAX, from inside the cluster (docs/AUTOSCALING.md).",
        ),
    ] = None
    idle_timeout: Annotated[
        int | None, typer.Option(help="Delete the cluster after this many seconds with no task and no client.")
    ] = None

    def resolve(self) -> "ClusterSpec":
        """The spec file's fields (if any), overridden by the options given."""
        # Imported here: the image commands never load the Kubernetes client.
        from buildtools.cluster import specs

        fields = specs.read_spec_file(self.spec_file) if self.spec_file else {}
        if self.name is None and "name" not in fields:
            raise ConfigError("give the cluster's NAME, or a spec file with a name (--spec FILE)")
        given = {
            "name": self.name,
            "namespace": self.namespace,
            "image": self.image,
            "n_workers": self.workers,
            "service_type": self.service_type,
            "adapt": None if self.adapt is None else adapt_policy(self.adapt),
            "idle_timeout": self.idle_timeout,
        }
        return specs.cluster_spec(fields, **{field: value for field, value in given.items() if value is not None})


@dataclass(frozen=True)
class JobOptions:
    """A batch job's runner (docs/JOBS.md): its command, and how Kubernetes runs it."""

    command: Annotated[
        list[str],
        typer.Argument(help="The command the runner runs, after --: `-- python job.py`.", show_default=False),
    ]
    runner_image: Annotated[str | None, typer.Option(help="The runner's image (default: the cluster's).")] = None
    backoff_limit: Annotated[int | None, typer.Option(help="Retries of a failed runner (default 0).")] = None
    deadline: Annotated[
        int | None, typer.Option(help="Seconds the job may run before Kubernetes stops it (default: no limit).")
    ] = None
    ttl: Annotated[
        int | None,
        typer.Option(help="Seconds the finished job's record is kept (default 300); its cluster goes at once."),
    ] = None

    def fields(self) -> dict[str, Any]:
        """run_job's keyword arguments (None: its default)."""
        return {
            "runner_image": self.runner_image,
            "backoff_limit": self.backoff_limit,
            "active_deadline_seconds": self.deadline,
            "ttl_seconds_after_finished": self.ttl,
        }

    def resolve(self, cluster: "ClusterSpec") -> "JobSpec":
        from buildtools.cluster.jobs import job_spec

        return job_spec(self.command, cluster, **self.fields())


def adapt_policy(text: str) -> dict[str, int]:
    """--adapt MIN:MAX as the spec's adapt field (whose checks then apply)."""
    minimum, sep, maximum = text.partition(":")
    if not (sep and minimum.isdigit() and maximum.isdigit()):
        raise ConfigError(f"--adapt must be MIN:MAX (two counts, e.g. 0:20), got {text!r}")
    return {"minimum": int(minimum), "maximum": int(maximum)}


def with_options(*groups: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command whose first parameters are instances of `groups` (PlanOptions, SpecOptions,
    JobOptions): its command line has the groups' options first, then the command's own."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        shared = [list(inspect.signature(group).parameters.values()) for group in groups]
        own = list(inspect.signature(command, eval_str=True).parameters.values())[len(groups) :]

        @functools.wraps(command)
        def wrapper(**values: Any) -> None:
            chosen = [
                group(**{p.name: values.pop(p.name) for p in ps}) for group, ps in zip(groups, shared, strict=True)
            ]
            command(*chosen, **values)

        # What typer reads a command's parameters from: the groups' and the command's own (keyword
        # parameters, so that defaults and no defaults may mix). A variadic argument (JobOptions'
        # command) comes last: click gives it what the other arguments leave.
        found = sorted([*(p for params in shared for p in params), *own], key=_variadic_last)
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in found]
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {param.name: param.annotation for param in parameters}
        return wrapper

    return decorate


def _variadic_last(parameter: inspect.Parameter) -> bool:
    return parameter.name == "command"
