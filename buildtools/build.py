"""Builds a plan: one buildx build per target, then sizes measured from the result and
judged against the budgets. Callers get results; nothing here prints."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from buildtools import engine
from buildtools.budgets import Verdict, judge
from buildtools.config import Budget
from buildtools.errors import ConfigError
from buildtools.plan import Plan, Target
from buildtools.progress import BuildProgress
from buildtools.registry import Registry
from buildtools.settings import REPO_ROOT, Settings
from buildtools.sizes import ContentSource, LayerSizeCache, OciLayoutSource, PlatformSize, RegistrySource, measure

OutputMode = Literal["push", "load", "oci"]
# Proxy settings reach RUN steps as BuildKit's predefined build arguments, which stay out
# of the image history and config.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@dataclass(frozen=True)
class BuildOptions:
    output: OutputMode = "push"
    oci_dir: Path | None = None
    ca_bundle: Path | None = None
    use_cache: bool = True


@dataclass(frozen=True)
class TargetResult:
    target: Target
    seconds: float
    platform_seconds: dict[str, float]
    work_steps: int
    cached_steps: int
    sizes: dict[str, PlatformSize]
    verdicts: list[Verdict]

    @property
    def fully_cached(self) -> bool:
        return self.work_steps > 0 and self.cached_steps == self.work_steps


def secrets_for(options: BuildOptions) -> list[str]:
    secrets = []
    if options.ca_bundle:
        if not options.ca_bundle.is_file():
            raise ConfigError(f"CA bundle {options.ca_bundle} does not exist")
        secrets.append(f"id=ca,src={options.ca_bundle}")
    if os.environ.get("PIP_INDEX_URL"):
        secrets.append("id=pip_index_url,env=PIP_INDEX_URL")
    return secrets


def proxy_args() -> dict[str, str]:
    return {name: os.environ[name] for name in PROXY_VARIABLES if os.environ.get(name)}


def output_for(target: Target, options: BuildOptions) -> dict[str, str]:
    if options.output == "push":
        return {"type": "image", "push": "true"}
    if options.output == "load":
        return {"type": "docker"}
    if options.oci_dir is None:
        raise ConfigError("--oci needs a directory")
    return {"type": "oci", "dest": str(options.oci_dir / target.image), "tar": "false"}


def content_source(target: Target, options: BuildOptions) -> ContentSource | None:
    if options.output == "push":
        return RegistrySource.for_ref(target.refs[0])
    if options.output == "oci" and options.oci_dir:
        return OciLayoutSource(options.oci_dir / target.image)
    return None  # an engine's local store has no per-platform compressed sizes


def previous_sizes(target: Target, cache: LayerSizeCache) -> dict[str, PlatformSize]:
    try:
        return measure(RegistrySource.for_ref(target.refs[0]), cache)
    except KeyError:
        return {}


def build_target(
    target: Target, settings: Settings, options: BuildOptions, on_log: Callable[[str], None]
) -> TargetResult:
    cache = LayerSizeCache(settings.cache_dir / "layer-sizes.json")
    previous = previous_sizes(target, cache) if options.output == "push" else {}
    registry_cache = options.use_cache and options.output == "push"
    progress = BuildProgress()

    def log(line: str) -> None:
        progress.feed(line)
        on_log(line)

    started = time.monotonic()
    engine.build(
        context=REPO_ROOT / target.context,
        dockerfile=REPO_ROOT / target.dockerfile,
        platforms=target.platforms,
        tags=target.refs,
        build_args={**target.build_args, **proxy_args()},
        secrets=secrets_for(options),
        output=output_for(target, options),
        cache_from=f"type=registry,ref={target.cache_ref}" if registry_cache else None,
        cache_to=f"type=registry,ref={target.cache_ref},mode=max" if registry_cache else None,
        labels={"org.opencontainers.image.title": f"minimaldask-{target.image}"},
        no_cache=not options.use_cache,
        on_log=log,
    )
    seconds = time.monotonic() - started
    source = content_source(target, options)
    sizes = measure(source, cache) if source else {}
    budgets = {platform: Budget(**budget) for platform, budget in target.budgets.items()}
    base_layers = (
        engine.layer_digests(target.build_args["BASE_IMAGE"], target.platforms)
        if any(budget.over_base for budget in budgets.values()) and sizes
        else None
    )
    return TargetResult(
        target=target,
        seconds=seconds,
        platform_seconds=progress.platform_seconds(),
        work_steps=progress.work_steps,
        cached_steps=progress.cached_steps,
        sizes=sizes,
        verdicts=judge(target.image, sizes, budgets, base_layers, previous),
    )


def build_plan(
    plan: Plan, settings: Settings, options: BuildOptions, on_log: Callable[[str], None]
) -> list[TargetResult]:
    if options.output == "push":
        Registry(plan.registry).ping()
    return [build_target(target, settings, options, on_log) for target in plan.targets]
