"""The build plan: pure resolution of image definitions into build targets.

`make images`, the tests and the GitHub workflow all consume this same plan (as JSON).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from buildtools.errors import ConfigError
from buildtools.images.config import MIRROR_REPOSITORY, Budget, ImageConfig
from buildtools.platforms import PLATFORMS

BaseMode = Literal["upstream", "mirror"]
BASE_MODES: tuple[BaseMode, ...] = ("upstream", "mirror")
CACHE_TAG = "buildcache"
# A GitHub-hosted runner has about 14 GB of free disk. A job whose image may hold more than
# this (uncompressed budget) first removes the runner's preinstalled toolchains: the build
# keeps the layers, the build cache and the exported image at once (RAPIDS: about 3 GB each).
FREE_DISK_ABOVE_MB = 1000


Compression = Literal["zstd", "gzip"]
COMPRESSIONS: tuple[Compression, ...] = ("zstd", "gzip")
# Layers are zstd by default: a third smaller to pull than gzip, and faster to unpack;
# containerd >= 1.5 and Docker Engine >= 23 pull them. The gzip build of a target carries
# this suffix on every tag, for older engines.
GZIP_TAG_SUFFIX = "-gzip"


@dataclass(frozen=True)
class Target:
    image: str
    python: str
    default_python: bool
    repository: str
    refs: list[str]
    platforms: list[str]
    context: str
    dockerfile: str
    build_args: dict[str, str]
    mirror_suite: str | None  # the offline base this target builds from, in mirror mode
    cache_ref: str
    budgets: dict[str, Budget]

    @property
    def name(self) -> str:
        """image and Python: debian-py3.13 (log files, CI job names)."""
        return f"{self.image}-py{self.python}"


@dataclass(frozen=True)
class Skipped:
    image: str
    reason: str


@dataclass(frozen=True)
class Plan:
    registry: str
    base: BaseMode
    compression: Compression
    targets: list[Target]
    skipped: list[Skipped] = field(default_factory=list)

    def matrix(self) -> list[dict[str, Any]]:
        """One job per image, Python and platform, for the GitHub workflow."""
        return [
            {
                "image": target.image,
                "python": target.python,
                "target": target.name,
                "platform": platform,
                "runner": PLATFORMS[platform].runner,
                "emulated": PLATFORMS[platform].emulated,
                "slug": f"{target.name}-{platform.replace('/', '-')}",
                "free_disk": target.budgets[platform].uncompressed_mb > FREE_DISK_ABOVE_MB,
            }
            for target in self.targets
            for platform in target.platforms
        ]

    def to_json(self) -> dict[str, Any]:
        targets = [
            {
                **asdict(target),
                "name": target.name,
                "budgets": {platform: budget.model_dump() for platform, budget in target.budgets.items()},
            }
            for target in self.targets
        ]
        return {**asdict(self), "targets": targets, "matrix": self.matrix()}


def base_image(config: ImageConfig, python: str, registry: str, base: BaseMode) -> str | None:
    variant = config.pythons[python]
    if base == "upstream":
        return variant.base
    return None if variant.mirror is None else f"{registry}/{MIRROR_REPOSITORY}:{variant.mirror}"


def select_platforms(config: ImageConfig, python: str, requested: list[str] | None) -> list[str]:
    available = config.variant_platforms(python)
    if not requested:
        return list(available)
    missing = [p for p in requested if p not in available]
    if missing:
        raise ConfigError(
            f"image {config.name} py{python} is not built for {', '.join(missing)} "
            f"(its platforms: {', '.join(available)}; base {config.pythons[python].base})"
        )
    return list(requested)


def select_pythons(config: ImageConfig, requested: list[str] | None) -> tuple[list[str], list[str]]:
    """(the image's Pythons to build, the requested ones it has no variant for)."""
    if not requested:
        return list(config.pythons), []
    return [p for p in requested if p in config.pythons], [p for p in requested if p not in config.pythons]


def make_target(
    config: ImageConfig,
    python: str,
    registry: str,
    base: str,
    platforms: list[str],
    extra_tags: list[str],
    compression: Compression,
    mirror_suite: str | None,
) -> Target:
    repository = f"{registry}/{config.repository}"
    suffix = GZIP_TAG_SUFFIX if compression == "gzip" else ""
    default = python == config.default_python
    tags = [*config.resolved_tags(python), *(extra_tags if default else [])]
    return Target(
        image=config.name,
        python=python,
        default_python=default,
        repository=repository,
        refs=[f"{repository}:{tag}{suffix}" for tag in tags],
        platforms=platforms,
        context=".",
        dockerfile=config.dockerfile_path,
        build_args={"BASE_IMAGE": base, **config.build_args(python)},
        mirror_suite=mirror_suite,
        cache_ref=f"{repository}:{CACHE_TAG}-py{python}",
        budgets={p: config.variant_budget(python, p) for p in platforms},
    )


def make_plan(
    configs: list[ImageConfig],
    registry: str,
    base: BaseMode = "upstream",
    platforms: list[str] | None = None,
    extra_tags: list[str] | None = None,
    pythons: list[str] | None = None,
    compression: Compression = "zstd",
) -> Plan:
    """Targets for every (image, Python); platforms and Pythons narrow it, extra tags go to
    the default Python's build (the one the plain tags name)."""
    if base not in BASE_MODES:
        raise ConfigError(f"unknown base mode {base!r} (expected: {', '.join(BASE_MODES)})")
    if compression not in COMPRESSIONS:
        raise ConfigError(f"unknown compression {compression!r} (expected: {', '.join(COMPRESSIONS)})")
    targets, skipped = [], []
    for config in configs:
        chosen, missing = select_pythons(config, pythons)
        if missing:
            skipped.append(Skipped(config.name, f"no Python {', '.join(missing)} (it has {', '.join(config.pythons)})"))
        for python in chosen:
            image_base = base_image(config, python, registry, base)
            if image_base is None:
                skipped.append(Skipped(config.name, f"no offline mirror of its base {config.pythons[python].base}"))
                continue
            target_platforms = select_platforms(config, python, platforms)
            mirror_suite = config.pythons[python].mirror if base == "mirror" else None
            targets.append(
                make_target(
                    config,
                    python,
                    registry,
                    image_base,
                    target_platforms,
                    list(extra_tags or []),
                    compression,
                    mirror_suite,
                )
            )
    return Plan(registry=registry, base=base, compression=compression, targets=targets, skipped=skipped)
