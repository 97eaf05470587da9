"""Adaptive scaling on the REAL node (env/k8s-node.sh): a cluster of the Debian image adapts from
1 worker to --maximum under a queued workload, then back to 1 when idle, with persisted data that
must survive (every key is checked after the scale-down).

up: time from the workload's submission until --maximum workers have joined the scheduler.
down: time from the workload's end until one worker pod is left (Adaptive's wait_count rounds
included), and the graceful scale-down by hand (`cluster.scale(1)` from --maximum workers).
Workers request 10m CPU / 64Mi so that --maximum fit the node. Prints a table and JSON.

usage: python -m bench.adapt [--maximum 20] [--node minimaldask-e2e]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from buildtools.cluster import labels
from buildtools.cluster.deploy import start_dask_cluster
from buildtools.cluster.kube import Kube
from buildtools.settings import Settings
from tests.helpers.node import Node

DEBIAN = "minimaldask/debian:2026.8.0-py3.13"
NAMESPACE = "bench-adapt"
SMALL_WORKER = {"worker": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}}


def until(check: Callable[[], bool], what: str, timeout: float = 900) -> float:
    """Seconds until check() holds (polled every 0.2 s)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"no {what} after {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.adapt", description=__doc__.splitlines()[0])
    parser.add_argument("--maximum", type=int, default=20)
    parser.add_argument("--node", default="minimaldask-e2e")
    args = parser.parse_args()

    import dask.array as da
    from distributed import Client, wait

    node = Node.up(args.node)
    kube = Kube.connect(str(node.kubeconfig))
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    selector = labels.label_selector("bench", "worker")

    def pods() -> int:
        return sum(1 for p in kube.list("v1", "Pod", NAMESPACE, selector) if not p["metadata"].get("deletionTimestamp"))

    with (
        start_dask_cluster(
            "bench",
            namespace=NAMESPACE,
            image=f"{Settings.load().registry}/{DEBIAN}",
            n_workers=1,
            resources=SMALL_WORKER,
            kubeconfig=str(node.kubeconfig),
            timeout=600,
            check_python=False,  # library functions only: they pickle by reference
        ) as cluster,
        Client(cluster, timeout=60) as client,
    ):
        client.wait_for_workers(1, timeout=600)
        x = da.ones((2000, 2000), chunks=(250, 250)).persist()
        wait(x, timeout=120)
        keys = set(client.who_has(x))

        def workers() -> int:
            return len(client.scheduler_info()["workers"])

        adaptive = cluster.adapt(minimum=1, maximum=args.maximum, interval="500ms", wait_count=2)
        busy = client.map(time.sleep, [1.0] * (args.maximum * 20), pure=False)
        up = until(lambda: workers() >= args.maximum, f"{args.maximum} workers")
        wait(busy, timeout=900)
        del busy
        down = until(lambda: pods() == 1, "1 worker pod")
        adaptive.stop()
        lost_adapt = len(keys - {k for k, holders in client.who_has(x).items() if holders})

        cluster.scale(args.maximum)
        until(lambda: workers() >= args.maximum, f"{args.maximum} workers")
        started = time.monotonic()
        cluster.scale(1)
        until(lambda: pods() == 1, "1 worker pod")
        by_hand = time.monotonic() - started
        lost_by_hand = len(keys - {k for k, holders in client.who_has(x).items() if holders})
        cluster.delete()

    rows = [
        {"step": f"adapt 1 -> {args.maximum} (submit to joined)", "seconds": round(up, 1), "keys_lost": 0},
        {"step": f"adapt {args.maximum} -> 1 (idle to 1 pod)", "seconds": round(down, 1), "keys_lost": lost_adapt},
        {"step": f"scale({args.maximum} -> 1) by hand", "seconds": round(by_hand, 1), "keys_lost": lost_by_hand},
    ]
    print(f"step | seconds | persisted keys lost (of {len(keys)})")
    for row in rows:
        print(f"{row['step']} | {row['seconds']} | {row['keys_lost']}")
    print(json.dumps({"maximum": args.maximum, "keys": len(keys), "results": rows}))


if __name__ == "__main__":
    main()
