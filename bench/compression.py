"""Layer compression: what a node pulls and what compressing costs, for gzip and zstd levels,
side by side in one run, on the layers of an image in the local registry.

BuildKit cannot be asked for this directly: it keeps the first zstd blob it made of a layer
and reuses it for any later level. So each layer is read from the registry, decompressed, and
compressed again here at every level (libzstd through the zstandard package, with as many
threads as --threads; gzip through zlib at its default level 6, which BuildKit also uses).
Prints a table and JSON.

usage: python -m bench.compression [REF] [--platform linux/amd64] [--zstd-levels 3 9 19] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Callable

import zstandard

from buildtools.images.config import load_image
from buildtools.images.registry import Registry
from buildtools.images.sizes import RegistrySource
from buildtools.platforms import platform_name
from buildtools.settings import Settings

GZIP_LEVEL = 6


def layers(ref: str, platform: str) -> list[bytes]:
    """The layers of one platform of REF, uncompressed."""
    source = RegistrySource.for_ref(ref)
    _, top = source.top()
    manifest = top
    if "manifests" in top:
        (entry,) = [m for m in top["manifests"] if platform_name(m.get("platform")) == platform]
        manifest = source.json(entry["digest"])
    raw = []
    for layer in manifest["layers"]:
        blob = b"".join(source.chunks(layer["digest"]))
        if "zstd" in layer["mediaType"]:
            raw.append(zstandard.ZstdDecompressor().decompressobj().decompress(blob))
        else:
            raw.append(zlib.decompress(blob, wbits=zlib.MAX_WBITS | 32))
    return raw


def measure(name: str, compress: Callable[[bytes], bytes], data: list[bytes]) -> dict[str, object]:
    started = time.perf_counter()
    size = sum(len(compress(layer)) for layer in data)
    return {
        "compression": name,
        "pulled_mb": round(size / 1e6, 1),
        "compress_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compression", description=__doc__.splitlines()[0])
    parser.add_argument("ref", nargs="?", default=None, help="image in the local registry (default: debian, 3.13)")
    parser.add_argument("--platform", default="linux/amd64")
    parser.add_argument("--zstd-levels", type=int, nargs="+", default=[3, 9, 19])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    registry = Settings.load().registry
    Registry(registry).ping()
    debian = load_image("debian")
    ref = args.ref or f"{registry}/{debian.repository}:{debian.resolved_tags(debian.default_python)[0]}"
    data = layers(ref, args.platform)
    rows = [measure(f"gzip-{GZIP_LEVEL}", lambda layer: zlib.compress(layer, GZIP_LEVEL), data)]
    for level in args.zstd_levels:
        compressor = zstandard.ZstdCompressor(level=level, threads=args.threads)
        rows.append(measure(f"zstd-{level}", compressor.compress, data))
    print(f"{ref} {args.platform}: {len(data)} layers, {sum(map(len, data)) / 1e6:.1f} MB uncompressed")
    print(f"{'compression':<12} | {'pulled MB':>9} | {'compress s':>10}")
    for row in rows:
        print(f"{row['compression']:<12} | {row['pulled_mb']:>9} | {row['compress_s']:>10}")
    print(json.dumps({"ref": ref, "platform": args.platform, "threads": args.threads, "results": rows}))


if __name__ == "__main__":
    main()
