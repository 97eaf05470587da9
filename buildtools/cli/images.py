"""The image commands: mirror, doctor, plan, build, report, changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from buildtools.cli.options import PlanOptions, PlatformOpt, with_options
from buildtools.cli.output import out, progress, write_output
from buildtools.errors import ConfigError, MinimalDaskError
from buildtools.images import engine, report
from buildtools.images.build import ZSTD_LEVEL, BuildOptions
from buildtools.images.changed import select_images
from buildtools.images.config import load_image, load_images
from buildtools.images.mirror import ensure_mirrors, mirror_ref
from buildtools.images.pipeline import run_build
from buildtools.images.plan import make_plan
from buildtools.settings import Settings

app = typer.Typer()


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


@app.command()
@with_options(PlanOptions)
def plan(chosen: PlanOptions) -> None:
    """Print the resolved build plan as JSON (no engine needed)."""
    _, resolved = chosen.resolve()
    print(json.dumps(resolved.to_json(), indent=2))


@app.command()
@with_options(PlanOptions)
def build(
    chosen: PlanOptions,
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
    settings, resolved = chosen.resolve()
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
