"""Budget verdicts are a pure comparison (no engine)."""

from buildtools.images.budgets import judge
from buildtools.images.config import Budget
from buildtools.images.sizes import LayerSize, PlatformSize


def size(platform: str, *layers: tuple[str, int, int]) -> PlatformSize:
    parts = [LayerSize(d, c, u) for d, c, u in layers]
    return PlatformSize(
        platform, "sha256:x", sum(p.compressed for p in parts), sum(p.uncompressed for p in parts), parts
    )


def test_within_budget_is_ok() -> None:
    (verdict,) = judge(
        "debian",
        {"linux/amd64": size("linux/amd64", ("a", 40_000_000, 90_000_000))},
        {"linux/amd64": Budget(compressed_mb=45, uncompressed_mb=100)},
    )
    assert verdict.ok and verdict.overruns == []


def test_overrun_line_names_image_platform_size_budget_and_excess() -> None:
    (verdict,) = judge(
        "alpine",
        {"linux/arm/v7": size("linux/arm/v7", ("a", 52_300_000, 90_000_000))},
        {"linux/arm/v7": Budget(compressed_mb=45, uncompressed_mb=80)},
    )
    assert verdict.overruns == [
        "alpine linux/arm/v7: 52.3 MB compressed, budget 45 MB, over by 7.3 MB",
        "alpine linux/arm/v7: 90.0 MB uncompressed, budget 80 MB, over by 10.0 MB",
    ]


def test_over_base_budgets_count_only_the_added_layers() -> None:
    image = size("linux/amd64", ("base1", 3_000_000_000, 9_000_000_000), ("ours", 40_000_000, 120_000_000))
    budget = Budget(compressed_mb=50, uncompressed_mb=150, over_base=True)
    (verdict,) = judge("rapids", {"linux/amd64": image}, {"linux/amd64": budget}, {"linux/amd64": {"base1"}})
    assert verdict.counted_compressed == 40_000_000
    assert verdict.ok
    (unknown_base,) = judge("rapids", {"linux/amd64": image}, {"linux/amd64": budget}, {"linux/amd64": set()})
    assert not unknown_base.ok
    assert "over its base" in unknown_base.overruns[0]


def test_delta_against_the_previous_build() -> None:
    now = {"linux/amd64": size("linux/amd64", ("a", 10, 20))}
    before = {"linux/amd64": size("linux/amd64", ("b", 15, 20))}
    (verdict,) = judge("debian", now, {"linux/amd64": Budget(compressed_mb=1, uncompressed_mb=1)}, previous=before)
    assert verdict.previous_compressed == 15
