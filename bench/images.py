"""Image figures per platform: sizes, layers, build times, container start-to-ready, and what
shipping .pyc files buys at start-up. Prints a table and JSON.

usage: python -m bench.images [IMAGE ...] [--cold] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from collections.abc import Callable

from python_on_whales import docker

from buildtools.images.build import BuildOptions
from buildtools.images.config import load_images
from buildtools.images.pipeline import run_build
from buildtools.images.plan import make_plan
from buildtools.settings import Settings
from tests.helpers.host import free_port, platform_env

IMPORT = "import time; t = time.perf_counter(); import dask.array, distributed; print(time.perf_counter() - t)"


def build_seconds(names: list[str], settings: Settings, use_cache: bool) -> dict[str, dict]:
    plan = make_plan(load_images(names), settings.registry, base="mirror")
    options = BuildOptions(ca_bundle=settings.default_ca_bundle, use_cache=use_cache)
    results = run_build(plan, settings, options, lambda line: None).results
    return {r.target.name: {"result": r, "seconds": r.seconds} for r in results}


def start_to_ready(image: str, platform: str, command: Callable[[int, int], list[str]] | None = None) -> float:
    """Seconds from `docker run` of a scheduler to its dashboard answering /health. The scheduler
    is the image's entrypoint's (told by HOST, PORT, DASHBOARD_PORT), or `command(port, dashboard)`."""
    port, dashboard = free_port(), free_port()
    started = time.monotonic()
    container = docker.run(
        image,
        command(port, dashboard) if command else [],
        platform=platform,
        detach=True,
        networks=["host"],
        envs={"HOST": "127.0.0.1", "PORT": str(port), "DASHBOARD_PORT": str(dashboard), **platform_env(platform)},
    )
    try:
        while time.monotonic() - started < 300:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/health", timeout=2) as response:
                    if response.read() == b"ok":
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{image} {platform}: not ready after 300 s")
    finally:
        container.remove(force=True)


def import_seconds(image: str, platform: str, without_pyc: bool) -> float:
    """Import time of dask.array + distributed, with the shipped .pyc or with all removed."""
    prefix = "find / -xdev -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null; " if without_pyc else ""
    output = docker.run(
        image,
        ["sh", "-c", f'{prefix}python3 -c "{IMPORT}"'],
        platform=platform,
        remove=True,
        networks=["none"],
        user="0",
        envs={"PYTHONDONTWRITEBYTECODE": "1", **platform_env(platform)},
    )
    return float(str(output).strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.images", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", default=["debian"])
    parser.add_argument("--cold", action="store_true", help="also time a build with no cache (slow)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of the start-up measures")
    args = parser.parse_args()
    settings = Settings.load()

    cold = build_seconds(args.images, settings, use_cache=False) if args.cold else {}
    warm = build_seconds(args.images, settings, use_cache=True)
    rows = []
    for name, built in warm.items():
        result = built["result"]
        for platform, size in sorted(result.sizes.items()):
            ref = result.target.refs[0]
            ready = [start_to_ready(ref, platform) for _ in range(args.runs)]
            with_pyc = [import_seconds(ref, platform, False) for _ in range(args.runs)]
            without_pyc = [import_seconds(ref, platform, True) for _ in range(args.runs)]
            rows.append(
                {
                    "image": name,
                    "platform": platform,
                    "compressed_mb": round(size.compressed / 1e6, 1),
                    "uncompressed_mb": round(size.uncompressed / 1e6, 1),
                    "layers": len(size.layers),
                    "cold_build_s": round(cold[name]["seconds"], 1) if name in cold else None,
                    "warm_build_s": round(built["seconds"], 1),
                    "warm_cached_steps": f"{result.cached_steps}/{result.work_steps}",
                    "start_to_ready_s": round(statistics.median(ready), 2),
                    "import_s_with_pyc": round(statistics.median(with_pyc), 2),
                    "import_s_without_pyc": round(statistics.median(without_pyc), 2),
                }
            )
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
