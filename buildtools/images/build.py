"""Builds a plan: one buildx build per target, then sizes measured from the result and
judged against the budgets. Callers get results; nothing here prints."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from buildtools.errors import ConfigError
from buildtools.images import engine
from buildtools.images.budgets import Verdict, judge
from buildtools.images.plan import Compression, Target
from buildtools.images.progress import BuildProgress
from buildtools.images.registry import Registry, split_ref
from buildtools.images.sizes import (
    ContentSource,
    LayerSizeCache,
    OciLayoutSource,
    PlatformSize,
    RegistrySource,
    measure,
)
from buildtools.settings import DATA_ROOT, Settings

OutputMode = Literal["push", "push-by-digest", "load", "oci"]
# zstd level of the layers BuildKit writes. Its encoder (klauspost/compress) has 4 speeds; the
# best, asked for by any level from 10, measured 68.7 MB where libzstd -9 gives 70.7 and -19
# gives 60.3 (Debian py3.11 arm64), for about a minute of export per platform on 2 cores:
# docs/PERFORMANCE.md.
ZSTD_LEVEL = 19
# Proxy settings reach RUN steps as BuildKit's predefined build arguments, which stay out
# of the image history and config.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@dataclass(frozen=True)
class BuildOptions:
    output: OutputMode = "push"
    oci_dir: Path | None = None
    ca_bundle: Path | None = None
    use_cache: bool = True
    cache_scope: str | None = None  # GitHub Actions cache scope; default: the registry cache
    zstd_level: int = ZSTD_LEVEL
    registry_cache: bool = True  # with push: import and export the registry build cache

    def cache_refs(self, target: Target) -> tuple[str | None, str | None]:
        """(cache-from, cache-to) for buildx."""
        if not self.use_cache:
            return None, None
        if self.cache_scope:
            return f"type=gha,scope={self.cache_scope}", f"type=gha,scope={self.cache_scope},mode=max"
        if self.output == "push" and self.registry_cache:
            # Importing a cache that was never exported costs buildx an error block in the log.
            cache_from = f"type=registry,ref={target.cache_ref}" if registry_cache_exists(target.cache_ref) else None
            return cache_from, f"type=registry,ref={target.cache_ref},mode=max"
        return None, None  # the engine's own build cache still applies


@dataclass(frozen=True)
class TargetResult:
    target: Target
    seconds: float
    platform_seconds: dict[str, float]
    work_steps: int
    cached_steps: int
    sizes: dict[str, PlatformSize]
    verdicts: list[Verdict]
    digest: str | None
    unmeasured: str | None = None  # why there are no sizes, when there are none


def registry_cache_exists(ref: str) -> bool:
    """Whether a registry cache was exported to ref. Remote registries are not asked: buildx
    reaches them with credentials this client does not have."""
    host, repository, reference = split_ref(ref)
    if not is_local(host):
        return True
    try:
        Registry(host).manifest(repository, reference)
    except KeyError:
        return False
    return True


def log_file(settings: Settings, target_name: str) -> Path:
    """Where buildx's full output of the last build of a target (debian-py3.13) is kept."""
    return settings.cache_dir / "logs" / f"build-{target_name}.log"


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


def compression_for(compression: Compression, options: BuildOptions) -> dict[str, str]:
    """Layer compression of an export; force-compression recompresses layers that the cache
    (or the base) holds in the other format, so every layer is what the tag promises."""
    if compression == "gzip":
        return {"compression": "gzip", "force-compression": "true"}
    return {
        "compression": "zstd",
        "compression-level": str(options.zstd_level),
        "force-compression": "true",
        "oci-mediatypes": "true",
    }


def output_for(target: Target, compression: Compression, options: BuildOptions) -> dict[str, str]:
    if options.output == "load":
        return {"type": "docker"}  # the engine's store keeps layers its own way
    layers = compression_for(compression, options)
    if options.output == "push":
        return {"type": "image", "push": "true", **layers}
    if options.output == "push-by-digest":
        # Untagged, for CI jobs that each build one platform; a later job tags the index.
        return {
            "type": "image",
            "name": target.repository,
            "push-by-digest": "true",
            "name-canonical": "true",
            "push": "true",
            **layers,
        }
    if options.oci_dir is None:
        raise ConfigError("--oci needs a directory")
    return {"type": "oci", "dest": str(options.oci_dir / target.name), "tar": "false", **layers}


def content_source(target: Target, options: BuildOptions) -> ContentSource | str:
    """Where the built image's sizes are read, or why they cannot be (one line for the user)."""
    registry = target.repository.split("/")[0]
    if options.output == "push" and is_local(registry):
        return RegistrySource.for_ref(target.refs[0])
    if options.output == "oci" and options.oci_dir:
        return OciLayoutSource(options.oci_dir / target.name)
    if options.output == "load":
        return "the engine's image store keeps no compressed layers; measure with --oci DIR or a local registry"
    if not is_local(registry):
        return (
            f"{registry} is read only by buildx, which holds its credentials (this client speaks plain HTTP "
            "to a local registry); measure with --oci DIR"
        )
    return "a push by digest has no tag to read it back by; measure with --oci DIR or --push"


def is_local(registry: str) -> bool:
    """A registry on this machine, spoken to over plain HTTP (remote ones are left to buildx)."""
    return registry.split(":")[0] in ("127.0.0.1", "localhost")


def previous_sizes(target: Target, cache: LayerSizeCache) -> dict[str, PlatformSize]:
    try:
        return measure(RegistrySource.for_ref(target.refs[0]), cache)
    except KeyError:
        return {}


def run_buildx(
    target: Target, compression: Compression, options: BuildOptions, metadata: Path, on_line: Callable[[str], None]
) -> None:
    cache_from, cache_to = options.cache_refs(target)
    engine.build(
        context=DATA_ROOT / target.context,
        dockerfile=DATA_ROOT / target.dockerfile,
        platforms=target.platforms,
        tags=[] if options.output == "push-by-digest" else target.refs,
        build_args={**target.build_args, **proxy_args()},
        secrets=secrets_for(options),
        output=output_for(target, compression, options),
        cache_from=cache_from,
        cache_to=cache_to,
        metadata_file=metadata,
        labels={"org.opencontainers.image.title": f"minimaldask-{target.image}"},
        no_cache=not options.use_cache,
        on_log=on_line,
    )


def build_target(
    target: Target,
    compression: Compression,
    settings: Settings,
    options: BuildOptions,
    on_progress: Callable[[str], None],
) -> TargetResult:
    """Build one target; on_progress gets one line per platform and finished step, while
    buildx's full output goes to log_file()."""
    cache = LayerSizeCache(settings.cache_dir / "layer-sizes.json")
    source = content_source(target, options)
    # What the tag held before this build (the size table's change); only a registry that is
    # measured can be read.
    previous = previous_sizes(target, cache) if isinstance(source, RegistrySource) else {}
    progress = BuildProgress(image=target.name, platform=target.platforms[0])
    metadata = settings.cache_dir / "metadata" / f"{target.name}.json"
    log = log_file(settings, target.name)
    try:
        for directory in {metadata.parent, log.parent}:
            directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"cannot write to the cache {settings.cache_dir} ({e.strerror}): "
            "set MINIMALDASK_CACHE to a folder you can write"
        ) from e

    started = time.monotonic()
    # Line-buffered, so that the log can be followed while the build runs.
    with log.open("w", buffering=1) as sink:

        def on_line(line: str) -> None:
            sink.write(line + "\n")
            if summary := progress.feed(line):
                on_progress(summary)

        run_buildx(target, compression, options, metadata, on_line)
    seconds = time.monotonic() - started
    sizes = {} if isinstance(source, str) else measure(source, cache)
    base_layers = (
        engine.layer_digests(target.build_args["BASE_IMAGE"], target.platforms)
        if any(budget.over_base for budget in target.budgets.values()) and sizes
        else None
    )
    return TargetResult(
        target=target,
        seconds=seconds,
        platform_seconds=progress.platform_seconds(),
        work_steps=progress.work_steps,
        cached_steps=progress.cached_steps,
        sizes=sizes,
        # The budgets are what a node pulls: the zstd layers; a gzip build is the same content.
        verdicts=judge(target.name, sizes, target.budgets, base_layers, previous) if compression == "zstd" else [],
        digest=json.loads(metadata.read_text()).get("containerimage.digest") if metadata.exists() else None,
        unmeasured=source if isinstance(source, str) else None,
    )
