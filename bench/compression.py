"""Layer compression: what a node pulls and what the export costs, for gzip and zstd levels,
side by side in one run. Each variant is the same image (every step a cache hit) exported to an
OCI layout with its layers compressed again (force-compression), so the time is the export's.
Prints a table and JSON.

usage: python -m bench.compression [IMAGE] [--python 3.13] [--platform linux/amd64] [--zstd-levels 3 9 19]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from buildtools.images.build import BuildOptions, build_target
from buildtools.images.config import load_image
from buildtools.images.mirror import ensure_mirrors
from buildtools.images.plan import Compression, make_plan
from buildtools.settings import Settings


def export(
    image: str, python: str, platform: str, compression: Compression, level: int, settings: Settings, oci: Path
) -> dict[str, object]:
    plan = make_plan([load_image(image)], settings.registry, "mirror", [platform], pythons=[python])
    (target,) = plan.targets
    ensure_mirrors(plan.targets, settings, lambda _: None)
    options = BuildOptions(output="oci", oci_dir=oci, ca_bundle=settings.default_ca_bundle, zstd_level=level)
    result = build_target(target, compression, settings, options, lambda _: None)
    size = result.sizes[platform]
    return {
        "compression": compression if compression == "gzip" else f"zstd-{level}",
        "compressed_mb": round(size.compressed / 1e6, 1),
        "uncompressed_mb": round(size.uncompressed / 1e6, 1),
        "export_s": round(result.seconds, 1),
        "cached_steps": f"{result.cached_steps}/{result.work_steps}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", default="debian")
    parser.add_argument("--python", default=None, help="Python minor (default: the image's default)")
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--zstd-levels", type=int, nargs="+", default=[3, 9, 19])
    args = parser.parse_args()
    settings = Settings.load()
    python = args.python or load_image(args.image).default_python
    variants: list[tuple[Compression, int]] = [("gzip", 0), *(("zstd", level) for level in args.zstd_levels)]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        # One warm-up export first, so that no variant pays for building the steps.
        export(args.image, python, args.platform, "gzip", 0, settings, Path(scratch) / "warm-up")
        for compression, level in variants:
            oci = Path(scratch) / f"{compression}-{level}"
            rows.append(export(args.image, python, args.platform, compression, level, settings, oci))
    print(f"{args.image} py{python} {args.platform}")
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    print(json.dumps({"image": args.image, "python": python, "platform": args.platform, "results": rows}))


if __name__ == "__main__":
    main()
