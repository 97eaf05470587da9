"""Adaptive scaling on the REAL node (env/k8s-node.sh): a cluster of the Debian image adapts from
1 worker to --maximum under a queued workload, then back to 1 when idle, with persisted data that
must survive (every key is checked after the scale-down).

Two rounds on the same cluster, side by side: the controller in the scheduler pod
(`cluster.adapt`) and Dask's client-side Adaptive (`cluster.adapt_in_client`). For each: from
the workload's submission to the first new worker pod and to --maximum workers joined; from the
workload's end to the first scale-down and to one worker pod left (hysteresis included). Then
the graceful scale-down by hand (`cluster.scale(1)` from --maximum workers).
Workers request 10m CPU / 64Mi so that --maximum fit the node. Prints a table and JSON.

usage: python -m bench.adapt [--maximum 20] [--node minimaldask-e2e]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from buildtools.cluster import labels
from buildtools.cluster.deploy import start_dask_cluster
from buildtools.cluster.kinds import POD
from buildtools.cluster.kube import Kube
from buildtools.settings import Settings
from tests.helpers.node import Node

DEBIAN = "minimaldask/debian:2026.8.0-py3.13"
NAMESPACE = "bench-adapt"
SMALL_WORKER = {"worker": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}}


def until(check: Callable[[], bool], what: str, timeout: float = 900) -> float:
    """Seconds until check() holds (polled every 0.2 s), saying on stderr what it waits for."""
    print(f"waiting for {what} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"no {what} after {timeout:.0f} s")
        time.sleep(0.2)
    seconds = time.monotonic() - started
    print(f"  {what}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return seconds


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
        return sum(1 for p in kube.list(POD, NAMESPACE, selector) if not p["metadata"].get("deletionTimestamp"))

    with (
        start_dask_cluster(
            "bench",
            namespace=NAMESPACE,
            image=f"{Settings.load().registry}/{DEBIAN}",
            n_workers=1,
            resources=SMALL_WORKER,
            kubeconfig=str(node.kubeconfig),
            timeout=600,
            # This host's Python may not be the image's: library functions only, which pickle by reference.
            check_python=False,
            env={"PYTHON_MISMATCH": "allow"},
        ) as cluster,
        Client(cluster, timeout=60) as client,
    ):
        client.wait_for_workers(1, timeout=600)
        x = da.ones((2000, 2000), chunks=(250, 250)).persist()
        wait(x, timeout=120)
        keys = set(client.who_has(x))

        def workers() -> int:
            return len(client.scheduler_info()["workers"])

        def lost() -> int:
            return len(keys - {k for k, holders in client.who_has(x).items() if holders})

        def adapt_round(mode: str, adaptive: Any) -> dict[str, Any]:
            """Submit a workload, then wait for the scale-up and, once it is done, the scale-down."""
            busy = client.map(time.sleep, [1.0] * (args.maximum * 20), pure=False)
            first_pod = until(lambda: pods() > 1, "a new worker pod")
            up = until(lambda: workers() >= args.maximum, f"{args.maximum} workers") + first_pod
            wait(busy, timeout=900)
            del busy
            first_down = until(lambda: pods() < args.maximum, "a first scale-down")
            down = until(lambda: pods() == 1, "1 worker pod") + first_down
            adaptive.stop()
            return {
                "mode": mode,
                "first_pod": round(first_pod, 1),
                "up": round(up, 1),
                "first_down": round(first_down, 1),
                "down": round(down, 1),
                "keys_lost": lost(),
            }

        results = [
            adapt_round("controller in the scheduler pod", cluster.adapt(minimum=1, maximum=args.maximum)),
            adapt_round(
                "client-side Adaptive (500ms, wait_count=2)",
                cluster.adapt_in_client(minimum=1, maximum=args.maximum, interval="500ms", wait_count=2),
            ),
        ]

        cluster.scale(args.maximum)
        until(lambda: workers() >= args.maximum, f"{args.maximum} workers")
        started = time.monotonic()
        cluster.scale(1)
        until(lambda: pods() == 1, "1 worker pod")
        by_hand = time.monotonic() - started
        lost_by_hand = lost()
        cluster.delete()

    print(f"adapt 1 -> {args.maximum} -> 1, seconds; persisted keys lost of {len(keys)}")
    print("mode | submit to first new pod | submit to all joined | idle to first scale-down | idle to 1 pod | lost")
    for row in results:
        print(" | ".join(str(row[key]) for key in ("mode", "first_pod", "up", "first_down", "down", "keys_lost")))
    print(f"scale({args.maximum} -> 1) by hand | {by_hand:.1f} s | lost {lost_by_hand}")
    print(json.dumps({"maximum": args.maximum, "keys": len(keys), "adapt": results, "scale_by_hand": by_hand}))


if __name__ == "__main__":
    main()
