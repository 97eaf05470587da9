"""Deploy figures against the real control plane with kwok fake nodes: time from
start_dask_cluster to every pod Ready, and delete time, for 1, 10 and 100 workers.
Pods are simulated by kwok (no containers run): this measures the API, the controllers,
the scheduler and our waits, not image pulls. Prints a table and JSON.

usage: python -m bench.deploy [--workers 1 10 100] [--nodes 10]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from kubernetes import client

from buildtools.cluster.deploy import delete_dask_cluster, start_dask_cluster
from tests.helpers.kwok_cluster import add_fake_node, api_client, start_cluster, stop_cluster

IMAGE = "127.0.0.1:5000/minimaldask/debian:2026.8.0-py3.13"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--nodes", type=int, default=10)
    args = parser.parse_args()

    kubeconfig = str(start_cluster("minimaldask-bench"))
    rows = []
    try:
        for index in range(args.nodes):
            add_fake_node(kubeconfig, f"bench-{index}", arch="amd64", pods="200")
        # The first deploy on a new control plane also waits for its controllers to settle
        # (default ServiceAccount, informer caches): measured once, apart.
        for label, workers in [("warm-up", 1), *((str(w), w) for w in args.workers)]:
            namespace = f"bench-{uuid.uuid4().hex[:6]}"
            with api_client(kubeconfig) as api:
                client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
            started = time.monotonic()
            start_dask_cluster(
                "bench",
                namespace=namespace,
                image=IMAGE,
                n_workers=workers,
                timeout=600,
                kubeconfig=kubeconfig,
                connect=False,
            )
            ready = time.monotonic() - started
            started = time.monotonic()
            delete_dask_cluster("bench", namespace, timeout=600, kubeconfig=kubeconfig)
            deleted = time.monotonic() - started
            rows.append({"workers": label, "ready_s": round(ready, 2), "delete_s": round(deleted, 2)})
    finally:
        stop_cluster("minimaldask-bench")
    print("workers | start to all Ready (s) | delete until gone (s)")
    for row in rows:
        print(f"{row['workers']} | {row['ready_s']} | {row['delete_s']}")
    print(json.dumps({"nodes": args.nodes, "results": rows}))


if __name__ == "__main__":
    main()
