"""The build plan: pure resolution of image definitions into build targets.

`make images`, the tests and the GitHub workflow all consume this same plan (as JSON).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from buildtools.errors import ConfigError
from buildtools.images.config import ImageConfig

BaseMode = Literal["upstream", "mirror"]
BASE_MODES: tuple[BaseMode, ...] = ("upstream", "mirror")

# GitHub-hosted runners per platform: arm64 builds natively; arm/v7 runs under QEMU on
# amd64, because not every arm64 runner CPU can execute 32-bit ARM code.
RUNNERS = {
    "linux/amd64": ("ubuntu-24.04", False),
    "linux/arm64": ("ubuntu-24.04-arm", False),
    "linux/arm/v7": ("ubuntu-24.04", True),
}
CACHE_TAG = "buildcache"
# A GitHub-hosted runner has about 14 GB of free disk. A job whose image may hold more than
# this (uncompressed budget) first removes the runner's preinstalled toolchains: the build
# keeps the layers, the build cache and the exported image at once (RAPIDS: about 3 GB each).
FREE_DISK_ABOVE_MB = 1000


@dataclass(frozen=True)
class Target:
    image: str
    repository: str
    refs: list[str]
    platforms: list[str]
    context: str
    dockerfile: str
    build_args: dict[str, str]
    cache_ref: str
    budgets: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Skipped:
    image: str
    reason: str


@dataclass(frozen=True)
class Plan:
    registry: str
    base: BaseMode
    targets: list[Target]
    skipped: list[Skipped] = field(default_factory=list)

    def matrix(self) -> list[dict[str, Any]]:
        """One job per image and platform, for the GitHub workflow."""
        return [
            {
                "image": target.image,
                "platform": platform,
                "runner": RUNNERS[platform][0],
                "emulated": RUNNERS[platform][1],
                "slug": f"{target.image}-{platform.replace('/', '-')}",
                "free_disk": target.budgets[platform]["uncompressed_mb"] > FREE_DISK_ABOVE_MB,
            }
            for target in self.targets
            for platform in target.platforms
        ]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "matrix": self.matrix()}


def base_image(config: ImageConfig, registry: str, base: BaseMode) -> str | None:
    if base == "upstream":
        return config.base.image
    mirror = config.base.mirror
    return None if mirror is None else f"{registry}/{mirror.repository}:{mirror.tag}"


def select_platforms(config: ImageConfig, requested: list[str] | None) -> list[str]:
    if not requested:
        return list(config.platforms)
    missing = [p for p in requested if p not in config.platforms]
    if missing:
        raise ConfigError(
            f"image {config.name} is not built for {', '.join(missing)} "
            f"(its platforms: {', '.join(config.platforms)}; its base {config.base.image} "
            f"provides {', '.join(config.base.platforms)})"
        )
    return list(requested)


def make_target(config: ImageConfig, registry: str, base: str, platforms: list[str], extra_tags: list[str]) -> Target:
    repository = f"{registry}/{config.repository}"
    return Target(
        image=config.name,
        repository=repository,
        refs=[f"{repository}:{tag}" for tag in [*config.resolved_tags(), *extra_tags]],
        platforms=platforms,
        context=".",
        dockerfile=config.dockerfile_path,
        build_args={"BASE_IMAGE": base, **config.build_args()},
        cache_ref=f"{repository}:{CACHE_TAG}",
        budgets={p: config.budgets[p].model_dump() for p in platforms},
    )


def make_plan(
    configs: list[ImageConfig],
    registry: str,
    base: BaseMode = "upstream",
    platforms: list[str] | None = None,
    extra_tags: list[str] | None = None,
) -> Plan:
    if base not in BASE_MODES:
        raise ConfigError(f"unknown base mode {base!r} (expected: {', '.join(BASE_MODES)})")
    targets, skipped = [], []
    for config in configs:
        chosen = select_platforms(config, platforms)
        image_base = base_image(config, registry, base)
        if image_base is None:
            skipped.append(Skipped(config.name, f"no offline mirror of its base {config.base.image}"))
            continue
        targets.append(make_target(config, registry, image_base, chosen, list(extra_tags or [])))
    return Plan(registry=registry, base=base, targets=targets, skipped=skipped)
