"""Size budgets: a pure comparison of measured sizes with each image's limits."""

from __future__ import annotations

from dataclasses import dataclass

from buildtools.images.config import Budget
from buildtools.images.sizes import PlatformSize

MB = 1_000_000


@dataclass(frozen=True)
class Verdict:
    image: str
    platform: str
    compressed: int
    uncompressed: int
    budget: Budget
    base_compressed: int = 0  # subtracted for budgets "over the base image"
    base_uncompressed: int = 0
    previous_compressed: int | None = None

    @property
    def counted_compressed(self) -> int:
        return self.compressed - self.base_compressed

    @property
    def counted_uncompressed(self) -> int:
        return self.uncompressed - self.base_uncompressed

    @property
    def overruns(self) -> list[str]:
        """One line per exceeded limit, e.g. 'alpine linux/arm/v7: 52.3 MB compressed, ...'."""
        lines = []
        over_base = " over its base" if self.budget.over_base else ""
        for kind, measured, limit_mb in (
            ("compressed", self.counted_compressed, self.budget.compressed_mb),
            ("uncompressed", self.counted_uncompressed, self.budget.uncompressed_mb),
        ):
            if measured > limit_mb * MB:
                lines.append(
                    f"{self.image} {self.platform}: {measured / MB:.1f} MB {kind}{over_base}, "
                    f"budget {limit_mb:g} MB, over by {(measured - limit_mb * MB) / MB:.1f} MB"
                )
        return lines

    @property
    def ok(self) -> bool:
        return not self.overruns


def judge(
    image: str,
    sizes: dict[str, PlatformSize],
    budgets: dict[str, Budget],
    base_layers: dict[str, set[str]] | None = None,
    previous: dict[str, PlatformSize] | None = None,
) -> list[Verdict]:
    """Verdicts per platform; base_layers (layer digests of the base, per platform) are
    left out of the count for budgets "over the base image"."""
    verdicts = []
    for platform, budget in budgets.items():
        size = sizes.get(platform)
        if size is None:
            continue
        in_base = (base_layers or {}).get(platform, set()) if budget.over_base else set()
        shared = [layer for layer in size.layers if layer.digest in in_base]
        before = (previous or {}).get(platform)
        verdicts.append(
            Verdict(
                image=image,
                platform=platform,
                compressed=size.compressed,
                uncompressed=size.uncompressed,
                budget=budget,
                base_compressed=sum(layer.compressed for layer in shared),
                base_uncompressed=sum(layer.uncompressed for layer in shared),
                previous_compressed=before.compressed if before else None,
            )
        )
    return verdicts
