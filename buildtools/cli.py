"""`buildtools` command line: parses options, calls one library function, prints results.

Library code never prints or exits; errors of the project's own types become one line
on stderr and a non-zero exit code, without a traceback. Over 250 lines because every
command is declared here, each a short function over one library call.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from buildtools.errors import ConfigError, MinimalDaskError
from buildtools.images import engine, report
from buildtools.images.build import ZSTD_LEVEL, BuildOptions
from buildtools.images.changed import select_images
from buildtools.images.config import load_image, load_images
from buildtools.images.mirror import ensure_mirrors, mirror_ref
from buildtools.images.pipeline import run_build
from buildtools.images.plan import BASE_MODES, COMPRESSIONS, BaseMode, Compression, Plan, make_plan
from buildtools.settings import Settings

if TYPE_CHECKING:
    from buildtools.cluster.specs import ClusterSpec

# No no_args_is_help: typer would print the whole help as an error; a bare `buildtools` is a
# usage error like any other (one line, exit 2).
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=__doc__.splitlines()[0])
# Tables stay whole in CI logs, where there is no terminal to take the width from.
out = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True)

ImagesArg = Annotated[list[str] | None, typer.Argument(help="Images (default: all under images/).", show_default=False)]
PlatformOpt = Annotated[
    list[str] | None, typer.Option("--platform", "-p", help="Platform(s) (default: all of the image's).")
]


def progress(message: str) -> None:
    err.print(message, highlight=False, markup=False, soft_wrap=True)


PythonOpt = Annotated[
    list[str] | None, typer.Option("--python", help="Python minor(s), e.g. 3.13 (default: all of the image's).")
]


@app.command()
def mirror(
    image: Annotated[str, typer.Argument(help="Image whose base to mirror.")] = "debian",
    platform: PlatformOpt = None,
    python: Annotated[
        list[str] | None, typer.Option("--python", help="Python minor(s) (default: the image's default one).")
    ] = None,
) -> None:
    """Build the offline base mirror from the Debian archive and push it to the registry."""
    config = load_image(image)
    settings = Settings.load()
    plan = make_plan([config], settings.registry, "mirror", platform, pythons=python or [config.default_python])
    if not plan.targets:
        reasons = "; ".join(skipped.reason for skipped in plan.skipped)
        raise ConfigError(f"image {image!r} has no offline base mirror for that Python ({reasons})")
    for result in ensure_mirrors(plan.targets, settings, progress):
        bootstrapped = ", ".join(result.built) or "none, all cached"
        out.print(
            f"{result.ref}  platforms: {', '.join(result.platforms)}  bootstrapped now: {bootstrapped}"
            f"  ({result.seconds:.0f} s)",
            highlight=False,
        )


@app.command()
def doctor(platform: PlatformOpt = None) -> None:
    """Check the engine, buildx and emulation: run `uname -m` in the base mirror per platform."""
    settings = Settings.load()
    progress(engine.check_engine())
    suites = [(c, c.pythons[c.default_python].mirror) for c in load_images() if c.pythons[c.default_python].mirror]
    if not suites:
        raise ConfigError("no image has a base mirror to run the platform check in")
    config, suite = suites[0]
    ref = mirror_ref(settings, suite)
    for wanted in platform or list(config.platforms):
        try:
            machine = engine.run(ref, ["uname", "-m"], platform=wanted)
        except MinimalDaskError as e:
            raise MinimalDaskError(
                f"cannot run {wanted} containers ({e}); register QEMU with: env/bootstrap.sh binfmt"
            ) from e
        out.print(f"{wanted}: uname -m -> {machine}", highlight=False)


RegistryOpt = Annotated[str | None, typer.Option(help="Registry to push to (default: $MINIMALDASK_REGISTRY).")]
BaseOpt = Annotated[
    str,
    typer.Option(help=f"Base image source: {' or '.join(BASE_MODES)} (the offline mirror).", envvar="MINIMALDASK_BASE"),
]
TagOpt = Annotated[
    list[str] | None, typer.Option("--tag", help="Extra tag(s) for each image's default-Python build, e.g. latest.")
]
CompressionOpt = Annotated[
    str,
    typer.Option(
        help=f"Layer compression: {' or '.join(COMPRESSIONS)} (gzip builds get tags ending in -gzip, for engines "
        "older than Docker 23 / containerd 1.5).",
        envvar="MINIMALDASK_COMPRESSION",
    ),
]


def resolve_plan(
    images: list[str] | None,
    platform: list[str] | None,
    registry: str | None,
    base: str,
    tag: list[str] | None,
    python: list[str] | None = None,
    compression: str = "zstd",
) -> tuple[Settings, Plan]:
    settings = Settings.load()
    plan = make_plan(
        load_images(images),
        registry or settings.registry,
        cast(BaseMode, base),
        platform,
        tag,
        python,
        cast(Compression, compression),
    )
    return settings, plan


@app.command()
def plan(
    images: ImagesArg = None,
    platform: PlatformOpt = None,
    registry: RegistryOpt = None,
    base: BaseOpt = "upstream",
    tag: TagOpt = None,
    python: PythonOpt = None,
    compression: CompressionOpt = "zstd",
) -> None:
    """Print the resolved build plan as JSON (no engine needed)."""
    _, resolved = resolve_plan(images, platform, registry, base, tag, python, compression)
    print(json.dumps(resolved.to_json(), indent=2))


@app.command()
def build(
    images: ImagesArg = None,
    platform: PlatformOpt = None,
    registry: RegistryOpt = None,
    base: BaseOpt = "upstream",
    tag: TagOpt = None,
    python: PythonOpt = None,
    compression: CompressionOpt = "zstd",
    push: Annotated[bool, typer.Option("--push", help="Push to the registry (the default).")] = False,
    push_by_digest: Annotated[
        bool, typer.Option("--push-by-digest", help="Push untagged (one platform per CI job); see --digest-file.")
    ] = False,
    digest_file: Annotated[Path | None, typer.Option(help="Write the pushed image's digest here.")] = None,
    cache_scope: Annotated[
        str | None, typer.Option(help="Use the GitHub Actions cache with this scope instead of the registry cache.")
    ] = None,
    load: Annotated[bool, typer.Option("--load", help="Load into the local engine instead of pushing.")] = False,
    oci: Annotated[Path | None, typer.Option("--oci", help="Write OCI layouts under this directory instead.")] = None,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(
            help="CA bundle for RUN steps behind a TLS-intercepting proxy (a BuildKit secret).",
            envvar="MINIMALDASK_CA_BUNDLE",
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build every step again.")] = False,
    zstd_level: Annotated[
        int,
        typer.Option(
            min=1, max=22, help="zstd level of new layers (BuildKit reuses a layer's first zstd blob at any level)."
        ),
    ] = ZSTD_LEVEL,
    report_file: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Hide the build log.")] = False,
) -> None:
    """Build images for all their platforms, measure sizes and enforce the budgets."""
    if sum([push, push_by_digest, load, oci is not None]) > 1:
        raise ConfigError("choose one of --push, --push-by-digest, --load and --oci")
    settings, resolved = resolve_plan(images, platform, registry, base, tag, python, compression)
    options = BuildOptions(
        output="load" if load else "oci" if oci else "push-by-digest" if push_by_digest else "push",
        oci_dir=oci,
        ca_bundle=ca_bundle or settings.default_ca_bundle,
        use_cache=not no_cache,
        cache_scope=cache_scope,
        zstd_level=zstd_level,
    )
    run = run_build(resolved, settings, options, progress, quiet=quiet)
    out.print(report.timing_table(run.results))
    if any(result.sizes for result in run.results):
        out.print(report.size_table(run.results))
    if report_file:
        write_output(report_file, json.dumps(report.json_report(run.results), indent=2))
    if digest_file:
        write_output(digest_file, "".join(f"{result.digest}\n" for result in run.results if result.digest))
    run.enforce_budgets()


@app.command(name="report")
def show_report(
    report_file: Annotated[Path, typer.Argument(help="A JSON report written by build --report.")],
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown table (for CI job summaries).")
    ] = False,
) -> None:
    """Print the size table of a build report."""
    try:
        data = json.loads(report_file.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the report {report_file}: {e}") from e
    print(report.markdown_table(data) if markdown else json.dumps(data, indent=2))


@app.command()
def changed(
    since: Annotated[str, typer.Option(help="Git ref to compare HEAD with (all zeros: no previous state).")],
    force_all: Annotated[bool, typer.Option("--all", help="Every image, whatever changed.")] = False,
    commit_message: Annotated[str, typer.Option(help="[rebuild] in it selects every image.")] = "",
) -> None:
    """Print, one per line, the images a diff since REF affects."""
    for name in select_images(since, load_images(), force_all, commit_message):
        print(name)


render_app = typer.Typer(help="Print manifests as plain YAML (for kubectl apply -f - and GitOps), or the spec schema.")
app.add_typer(render_app, name="render")
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace.")]

# The cluster commands' spec: a spec file's fields, which these options override.
ClusterNameArg = Annotated[
    str | None, typer.Argument(help="Cluster name (DNS-1035 label; default: the spec file's).", show_default=False)
]
SpecFileOpt = Annotated[
    Path | None,
    typer.Option("--spec", help="A YAML file of ClusterSpec fields (docs/CLUSTER-SPEC.md); the options override it."),
]
ClusterNamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: the spec file's, else default).")
]
ImageOpt = Annotated[
    str | None, typer.Option(help="Image (default: the spec file's, else the Debian image of the local distributed).")
]
WorkersOpt = Annotated[int | None, typer.Option(help="Number of workers (default: the spec file's, else 1).")]
ServiceTypeOpt = Annotated[
    str | None, typer.Option(help="ClusterIP, NodePort or LoadBalancer (default: the spec file's, else ClusterIP).")
]


def cluster_spec(
    name: str | None,
    spec_file: Path | None,
    namespace: str | None,
    image: str | None,
    workers: int | None,
    service_type: str | None,
) -> ClusterSpec:
    """The spec file's fields (if any), overridden by the options given."""
    from buildtools.cluster import specs

    fields = specs.read_spec_file(spec_file) if spec_file else {}
    if name is None and "name" not in fields:
        raise ConfigError("give the cluster's NAME, or a spec file with a name (--spec FILE)")
    options = {"name": name, "namespace": namespace, "image": image, "n_workers": workers, "service_type": service_type}
    return specs.cluster_spec(fields, **{field: value for field, value in options.items() if value is not None})


@render_app.command("cluster")
def render_cluster_command(
    name: ClusterNameArg = None,
    spec_file: SpecFileOpt = None,
    namespace: ClusterNamespaceOpt = None,
    image: ImageOpt = None,
    workers: WorkersOpt = None,
    service_type: ServiceTypeOpt = None,
) -> None:
    """The scheduler Service and Deployment and the worker Deployment."""
    from buildtools.cluster import render

    spec = cluster_spec(name, spec_file, namespace, image, workers, service_type)
    print(render.to_yaml(render.render_cluster(spec)), end="")


@render_app.command("spec-schema")
def render_spec_schema_command() -> None:
    """The JSON schema of a spec file (docs/cluster-spec.schema.json)."""
    from buildtools.cluster.specs import ClusterSpec

    print(json.dumps(ClusterSpec.model_json_schema(), indent=2))


@render_app.command("prepuller")
def render_prepuller_command(
    name: Annotated[str, typer.Argument(help="Prepuller name.")],
    image: Annotated[list[str], typer.Option(help="Image(s) to prepull.")],
    namespace: NamespaceOpt = "default",
) -> None:
    """The image prepuller DaemonSet."""
    from buildtools.cluster import render, specs

    print(
        render.to_yaml(render.render_prepuller(specs.PrepullSpec(name=name, namespace=namespace, images=image))),
        end="",
    )


@render_app.command("rbac")
def render_rbac_command(
    namespace: NamespaceOpt = "default",
) -> None:
    """The ServiceAccount, Role and RoleBinding the deploy needs (docs/RBAC.md)."""
    from buildtools.cluster import render

    print(render.to_yaml(render.render_rbac(namespace)), end="")


KubeconfigOpt = Annotated[str | None, typer.Option(help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")]
ContextOpt = Annotated[str | None, typer.Option(help="Kubeconfig context (default: its current context).")]


@app.command()
def up(
    name: ClusterNameArg = None,
    spec_file: SpecFileOpt = None,
    namespace: ClusterNamespaceOpt = None,
    image: ImageOpt = None,
    workers: WorkersOpt = None,
    service_type: ServiceTypeOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds for the prepull and the rollout together.")] = 300,
    wait: Annotated[bool, typer.Option(help="Wait until the scheduler and the workers are Ready.")] = True,
    prepull: Annotated[bool, typer.Option(help="Prepull the image onto every node first.")] = False,
    keep_on_failure: Annotated[bool, typer.Option(help="Leave the objects of a failed start for inspection.")] = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Start (or update) a Dask cluster on Kubernetes and print where it is.

    Every field of the cluster is reachable through the spec file (docs/CLUSTER-SPEC.md); on a
    cluster that runs, only the fields given change (the others, and its workers, stay)."""
    from buildtools.cluster import contract, labels
    from buildtools.cluster.deploy import start_dask_cluster

    with start_dask_cluster(
        spec=cluster_spec(name, spec_file, namespace, image, workers, service_type),
        timeout=timeout,
        wait=wait,
        prepull=prepull,
        keep_on_failure=keep_on_failure,
        kubeconfig=kubeconfig,
        context=context,
        on_progress=progress,
        connect=False,  # the command ends here: nothing to connect for
        shutdown_on_close=False,
    ) as cluster:
        spec = cluster.spec
    table = Table(title=f"Dask cluster {spec.namespace}/{spec.name}")
    table.add_column("scheduler (in cluster)")
    table.add_column("dashboard (in cluster)")
    table.add_column("workers")
    table.add_row(
        contract.scheduler_address(spec),
        f"http://{labels.scheduler_service_name(spec.name)}.{spec.namespace}.svc:{contract.DASHBOARD_PORT}",
        str(spec.n_workers),
    )
    out.print(table)


@app.command()
def down(
    name: Annotated[str, typer.Argument(help="Cluster name.")],
    namespace: NamespaceOpt = "default",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Delete everything a Dask cluster created (idempotent)."""
    from buildtools.cluster.deploy import delete_dask_cluster

    count = delete_dask_cluster(name, namespace, kubeconfig=kubeconfig, context=context, on_progress=progress)
    out.print(f"deleted {count} objects of cluster {namespace}/{name}", highlight=False)


def write_output(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror}") from e


def fail(message: str, exit_code: int) -> None:
    err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    sys.exit(exit_code)


def usage_message(error: typer.TyperException) -> str:
    """A usage error on one line, with the command whose help to read; typer's own display
    is a box with the usage line and the message."""
    # The context is an attribute of typer's UsageError, which typer does not export.
    ctx = getattr(error, "ctx", None)
    hint = f" (try: {ctx.command_path} --help)" if ctx is not None else ""
    return error.format_message() + hint


def show_warning(message: Warning | str, *_: Any, **__: Any) -> None:
    """A library's warning (e.g. a scheduler exposed without TLS) on one line, like an error;
    Python's own display adds the file, the line number and the line of code."""
    err.print(f"warning: {message}", highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    warnings.showwarning = show_warning
    # Not standalone: errors reach this function instead of typer's display, and typer
    # returns the code of the exits it handles (0 after --help).
    try:
        exit_code = app(standalone_mode=False)
    except MinimalDaskError as e:
        # Notes carry what else went wrong, e.g. a cleanup that left objects behind.
        fail("; ".join([str(e), *getattr(e, "__notes__", [])]), e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        fail("aborted", 130)
    except typer.TyperException as e:  # a usage error: the command line is wrong
        fail(usage_message(e), e.exit_code)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)
