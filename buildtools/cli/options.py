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
    from buildtools.cluster.specs import ClusterSpec

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


def adapt_policy(text: str) -> dict[str, int]:
    """--adapt MIN:MAX as the spec's adapt field (whose checks then apply)."""
    minimum, sep, maximum = text.partition(":")
    if not (sep and minimum.isdigit() and maximum.isdigit()):
        raise ConfigError(f"--adapt must be MIN:MAX (two counts, e.g. 0:20), got {text!r}")
    return {"minimum": int(minimum), "maximum": int(maximum)}


def with_options(group: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command whose first parameter is an instance of `group` (PlanOptions, SpecOptions):
    its command line has the group's options first, then the command's own."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        shared = list(inspect.signature(group).parameters.values())
        own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]

        @functools.wraps(command)
        def wrapper(**values: Any) -> None:
            command(group(**{param.name: values.pop(param.name) for param in shared}), **values)

        # What typer reads a command's parameters from: the group's and the command's own.
        parameters = [*shared, *own]
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {param.name: param.annotation for param in parameters}
        return wrapper

    return decorate
