"""Presents build results: a table for people, JSON for CI. No decisions are made here."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from buildtools.images.budgets import MB, Verdict
from buildtools.images.build import TargetResult
from buildtools.images.sizes import PlatformSize


def _mb(value: int) -> str:
    return f"{value / MB:.1f}"


def _delta(verdict: Verdict) -> str:
    if verdict.previous_compressed is None:
        return "new"
    change = (verdict.compressed - verdict.previous_compressed) / MB
    return f"{change:+.1f}"


# A gzip build is the zstd build's content in other layers: the budgets judge the zstd one.
NOT_JUDGED = "gzip, not judged"


def _platforms(result: TargetResult) -> list[tuple[str, PlatformSize, Verdict | None]]:
    """Each platform built, its size and its verdict (None: NOT_JUDGED), in platform order."""
    verdicts = {verdict.platform: verdict for verdict in result.verdicts}
    return [(platform, size, verdicts.get(platform)) for platform, size in sorted(result.sizes.items())]


def size_table(results: list[TargetResult]) -> Table:
    table = Table(title="Image sizes (MB = 10^6 bytes; compressed is what a node pulls)")
    for column in ("image", "platform", "compressed", "budget", "uncompressed", "budget", "layers", "Δ", "status"):
        table.add_column(column, justify="left" if column in ("image", "platform", "status") else "right")
    for result in results:
        for platform, size, verdict in _platforms(result):
            if verdict is None:
                row = [_mb(size.compressed), "-", _mb(size.uncompressed), "-", str(len(size.layers)), "-", NOT_JUDGED]
            else:
                suffix = " +base" if verdict.budget.over_base else ""
                row = [
                    _mb(verdict.counted_compressed) + suffix,
                    f"{verdict.budget.compressed_mb:g}",
                    _mb(verdict.counted_uncompressed) + suffix,
                    f"{verdict.budget.uncompressed_mb:g}",
                    str(len(size.layers)),
                    _delta(verdict),
                    "ok" if verdict.ok else "OVER",
                ]
            table.add_row(result.target.name, platform, *row)
    return table


def timing_table(results: list[TargetResult]) -> Table:
    table = Table(title="Build times (platforms build in parallel; their step times overlap)")
    for column in ("image", "wall s", "steps cached", "per-platform step s"):
        table.add_column(column)
    for result in results:
        per_platform = ", ".join(f"{p} {s:.0f}" for p, s in sorted(result.platform_seconds.items()))
        table.add_row(
            result.target.name,
            f"{result.seconds:.0f}",
            f"{result.cached_steps}/{result.work_steps}",
            per_platform or "-",
        )
    return table


def _platform_report(platform: str, size: PlatformSize, verdict: Verdict | None) -> dict[str, Any]:
    judged: dict[str, Any] = (
        {
            "counted_compressed": verdict.counted_compressed,
            "counted_uncompressed": verdict.counted_uncompressed,
            "budget": verdict.budget.model_dump(),
            "previous_compressed": verdict.previous_compressed,
            "over_budget": verdict.overruns,
        }
        if verdict
        else {  # NOT_JUDGED
            "counted_compressed": size.compressed,
            "counted_uncompressed": size.uncompressed,
            "budget": None,
            "previous_compressed": None,
            "over_budget": [],
        }
    )
    return {
        "platform": platform,
        "digest": size.digest,
        "compressed": size.compressed,
        "uncompressed": size.uncompressed,
        "layers": len(size.layers),
        **judged,
    }


def json_report(results: list[TargetResult]) -> dict[str, Any]:
    return {
        "images": [
            {
                "image": result.target.image,
                "python": result.target.python,
                "name": result.target.name,
                "refs": result.target.refs,
                "seconds": round(result.seconds, 1),
                "platform_seconds": {p: round(s, 1) for p, s in result.platform_seconds.items()},
                "work_steps": result.work_steps,
                "cached_steps": result.cached_steps,
                "sizes_not_measured": result.unmeasured,
                "platforms": [_platform_report(*entry) for entry in _platforms(result)],
            }
            for result in results
        ],
        "ok": all(v.ok for result in results for v in result.verdicts),
    }


def markdown_table(data: dict[str, Any]) -> str:
    """The size table of a JSON report, as Markdown for a CI job summary."""
    lines = [
        "| image | platform | compressed MB | budget | uncompressed MB | budget | layers | status |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for image in data["images"]:
        for p in image["platforms"]:
            budget = p["budget"]
            status = NOT_JUDGED if budget is None else "OVER" if p["over_budget"] else "ok"
            compressed, uncompressed = (
                ("-", "-") if budget is None else (f"{budget['compressed_mb']:g}", f"{budget['uncompressed_mb']:g}")
            )
            lines.append(
                f"| {image.get('name', image['image'])} | {p['platform']} | {_mb(p['counted_compressed'])} | "
                f"{compressed} | {_mb(p['counted_uncompressed'])} | {uncompressed} | {p['layers']} | {status} |"
            )
    return "\n".join(lines)
