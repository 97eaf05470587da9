"""minimaldask's Debian image and its dataframe flavour beside the image a user would write
instead, in one run on one machine, linux/amd64, the same Dask version: bench/peer/Dockerfile
(the offline mirror's trixie base, Debian's python3-pip, `pip install "dask[complete]"`, which
brings pandas and pyarrow as the dataframe flavour does).

Both are built here and pushed to the local registry twice, with zstd (level 19, as every
minimaldask image) and gzip layers (Docker Hub's format, engines before Docker 23); the sizes
are the registry's (layers + config, MB = 10^6 bytes). Then, `--runs` times each: seconds from
`docker run` of a scheduler to its dashboard answering /health, and the import time of
dask.array + distributed in a fresh container. Prints a table and JSON.

usage: python -m bench.peers [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from python_on_whales import docker

from bench.images import import_seconds, start_to_ready
from buildtools.images.build import BuildOptions, compression_for, secrets_for
from buildtools.images.config import load_image, load_images
from buildtools.images.pipeline import run_build
from buildtools.images.plan import Compression, make_plan
from buildtools.images.sizes import RegistrySource, measure
from buildtools.settings import REPO_ROOT, Settings

PLATFORM = "linux/amd64"
PEER_DOCKERFILE = REPO_ROOT / "bench" / "peer" / "Dockerfile"
COMPRESSIONS: tuple[Compression, ...] = ("zstd", "gzip")


@dataclass(frozen=True)
class Built:
    name: str
    refs: dict[Compression, str]  # by layer compression
    # How a scheduler starts, given its port and dashboard port (None: the image's entrypoint).
    command: Callable[[int, int], list[str]] | None


def dask_scheduler(port: int, dashboard: int) -> list[str]:
    """A scheduler as Dask's docs start one (the peer has no entrypoint), on loopback."""
    return [
        "dask",
        "scheduler",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dashboard-address",
        f"127.0.0.1:{dashboard}",
    ]


def build_ours(settings: Settings, name: str, compression: Compression) -> str:
    """Image NAME of the default Python, amd64, pushed with this compression; its ref."""
    image = load_image(name)
    plan = make_plan(
        load_images([name]), settings.registry, "mirror", [PLATFORM], None, [image.default_python], compression
    )
    options = BuildOptions(ca_bundle=settings.default_ca_bundle)
    (result,) = run_build(plan, settings, options, lambda line: None, quiet=True).results
    return result.target.refs[0]


def build_peer(settings: Settings, compression: Compression) -> str:
    debian = load_image("debian")
    ref = f"{settings.registry}/minimaldask-bench/peer:dask-{debian.versions['dask']}-{compression}"
    options = BuildOptions(ca_bundle=settings.default_ca_bundle)
    docker.buildx.build(
        REPO_ROOT,
        file=PEER_DOCKERFILE,
        platforms=[PLATFORM],
        build_args={
            "BASE_IMAGE": f"{settings.registry}/minimaldask/debian-base:trixie",
            "DASK_VERSION": debian.versions["dask"],
        },
        secrets=secrets_for(options),
        output={"type": "image", "name": ref, "push": "true", **compression_for(compression, options)},
        provenance=False,
    )
    return ref


def figures(built: Built, runs: int) -> dict[str, Any]:
    sizes = {c: measure(RegistrySource.for_ref(ref))[PLATFORM] for c, ref in built.refs.items()}
    zstd_ref = built.refs["zstd"]
    ready = [start_to_ready(zstd_ref, PLATFORM, built.command) for _ in range(runs)]
    imports = [import_seconds(zstd_ref, PLATFORM, False) for _ in range(runs)]
    return {
        "image": built.name,
        "pulled_mb_zstd": round(sizes["zstd"].compressed / 1e6, 1),
        "pulled_mb_gzip": round(sizes["gzip"].compressed / 1e6, 1),
        "uncompressed_mb": round(sizes["zstd"].uncompressed / 1e6, 1),
        "run_to_health_s": round(statistics.median(ready), 2),
        "import_s": round(statistics.median(imports), 2),
        "runs": {"run_to_health_s": [round(s, 2) for s in ready], "import_s": [round(s, 2) for s in imports]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of the start-up measures")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    settings = Settings.load()
    images = [
        # The default image, and the flavour with pandas and pyarrow, as dask[complete] has them.
        *(
            Built(f"minimaldask {name}", {c: build_ours(settings, name, c) for c in COMPRESSIONS}, None)
            for name in ("debian", "debian-dataframe")
        ),
        Built(
            "peer: trixie-slim + pip dask[complete]", {c: build_peer(settings, c) for c in COMPRESSIONS}, dask_scheduler
        ),
    ]
    rows = [figures(built, args.runs) for built in images]
    columns = [key for key in rows[0] if key != "runs"]
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[column]) for column in columns))
    if args.json:
        print(json.dumps({"platform": PLATFORM, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
