"""The cluster commands: up, down, credentials, job, job-status, and render (manifests, the spec schema). The
cluster flow is imported inside each command: the image commands never load the Kubernetes client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from buildtools.cli.options import ContextOpt, JobOptions, KubeconfigOpt, NamespaceOpt, SpecOptions, with_options
from buildtools.cli.output import out, progress

if TYPE_CHECKING:
    from buildtools.cluster.jobs import JobStatus

app = typer.Typer()
render_app = typer.Typer(help="Print manifests as plain YAML (for kubectl apply -f - and GitOps), or the spec schema.")
app.add_typer(render_app, name="render")


@render_app.command("cluster")
@with_options(SpecOptions)
def render_cluster_command(chosen: SpecOptions) -> None:
    """The scheduler Service and Deployment and the worker Deployment."""
    from buildtools.cluster import render

    print(render.to_yaml(render.render_cluster(chosen.resolve())), end="")


@render_app.command("job")
@with_options(SpecOptions, JobOptions)
def render_job_command(chosen: SpecOptions, job: JobOptions) -> None:
    """A batch job: its runner Job and its cluster (for kubectl apply; docs/JOBS.md)."""
    from buildtools.cluster import render

    print(render.to_yaml(render.render_job(job.resolve(chosen.resolve()))), end="")


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


@app.command()
@with_options(SpecOptions)
def up(
    chosen: SpecOptions,
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
    from buildtools.cluster.address import dashboard_address, scheduler_address
    from buildtools.cluster.deploy import start_dask_cluster

    with start_dask_cluster(
        spec=chosen.resolve(),
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
        scheduler_address(spec.name, spec.namespace, spec.tls),
        dashboard_address(spec.name, spec.namespace),
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


@app.command()
def credentials(
    name: Annotated[str, typer.Argument(help="Cluster name.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for ca.crt, tls.crt and tls.key.")],
    namespace: NamespaceOpt = "default",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Write a TLS cluster's client credentials, for a client that is not this package's handle
    (docs/TLS.md): the key is readable by you only."""
    from buildtools.cluster.credentials import of_cluster_named
    from buildtools.cluster.kube import Kube

    written = of_cluster_named(Kube.connect(kubeconfig, context), name, namespace).write(out_dir)
    out.print(f"wrote {', '.join(str(path) for path in written)}", highlight=False)


@app.command("job")
@with_options(SpecOptions, JobOptions)
def job_command(
    chosen: SpecOptions,
    job: JobOptions,
    timeout: Annotated[
        float, typer.Option(help="Seconds for the start: the cluster's rollout and the runner's start.")
    ] = 300,
    wait: Annotated[bool, typer.Option(help="Follow the runner's log and exit with the command's exit code.")] = True,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Run a command against a Dask cluster of its own, gone when the command ends (docs/JOBS.md).

    `buildtools job NAME [--spec FILE] -- python job.py`: the runner's log follows as it runs,
    and the exit code is the command's. The job goes on when this command is stopped."""
    from buildtools.cluster.jobs import run_job

    status = run_job(
        job.command,
        spec=chosen.resolve(),
        wait=wait,
        timeout=timeout,
        kubeconfig=kubeconfig,
        context=context,
        on_progress=progress,
        **job.fields(),
    )
    print_job_status(status)


@app.command("job-status")
def job_status_command(
    name: Annotated[str, typer.Argument(help="Job name.")],
    namespace: NamespaceOpt = "default",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """The state of a batch job: pending, running, succeeded or failed (exit 1 when failed)."""
    from buildtools.cluster.jobs import job_status

    status = job_status(name, namespace, kubeconfig=kubeconfig, context=context)
    print_job_status(status)
    if status.state == "failed":
        raise typer.Exit(1)


def print_job_status(status: JobStatus) -> None:
    table = Table(title=f"Dask job {status.namespace}/{status.name}")
    for column in ("state", "exit code", "seconds", "runner pod", "reason"):
        table.add_column(column)
    seconds = "" if status.seconds is None else f"{status.seconds:.0f}"
    code = "" if status.exit_code is None else str(status.exit_code)
    table.add_row(status.state, code, seconds, status.pod or "", status.reason)
    out.print(table)
