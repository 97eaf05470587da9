"""Deploy figures against the real control plane with kwok fake nodes, ours against a floor:
start_dask_cluster until every pod is Ready and delete_dask_cluster until nothing is left,
versus `kubectl apply --server-side` + `kubectl rollout status` and `kubectl delete
--cascade=foreground --wait` of the same rendered manifests, in fresh namespaces of one run.

Pods are simulated by kwok (no containers run): this measures the API, the controllers, the
scheduler and the clients' own work and waits, not image pulls. kubectl is the one
env/k8s-build.sh builds (the control plane's version). Prints a table and JSON.

Each figure is the median of --runs runs; ours and kubectl take turns going first.

usage: python -m bench.deploy [--workers 100 500] [--nodes 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from buildtools.cluster.deploy import delete_dask_cluster, start_dask_cluster
from buildtools.cluster.render import render_cluster, to_yaml
from buildtools.cluster.specs import ClusterSpec
from buildtools.settings import REPO_ROOT
from tests.helpers.kwok_cluster import add_fake_node, api_client, start_cluster, stop_cluster

IMAGE = "127.0.0.1:5000/minimaldask/debian:2026.8.0-py3.13"
CLUSTER = "minimaldask-bench"
TIMEOUT = 900


def kubectl_path() -> str:
    bin_dir = subprocess.run(
        ["sh", str(REPO_ROOT / "env" / "k8s-build.sh"), "--bin-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"{bin_dir}/kubectl"


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return round(time.monotonic() - started, 2)


def fresh_namespace(kubeconfig: str) -> str:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    with api_client(kubeconfig) as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    return namespace


def ours(kubeconfig: str, workers: int) -> tuple[float, float]:
    namespace = fresh_namespace(kubeconfig)
    options = {"timeout": TIMEOUT, "kubeconfig": kubeconfig}
    # connect=False: kwok runs no container, so there is no scheduler to connect to.
    start = {"namespace": namespace, "image": IMAGE, "n_workers": workers, "connect": False}
    ready = timed(lambda: start_dask_cluster("bench", **start, **options))
    deleted = timed(lambda: delete_dask_cluster("bench", namespace, **options))
    return ready, deleted


def floor(kubeconfig: str, workers: int, kubectl: str) -> tuple[float, float]:
    """The same manifests through kubectl: the time the API and controllers need, with a client
    that watches and does nothing else."""
    namespace = fresh_namespace(kubeconfig)
    spec = ClusterSpec(name="bench", namespace=namespace, image=IMAGE, n_workers=workers)
    with tempfile.TemporaryDirectory() as folder:
        manifests = Path(folder) / "cluster.yaml"
        manifests.write_text(to_yaml(render_cluster(spec)))

        def run(*args: str) -> None:
            command = [kubectl, "--kubeconfig", kubeconfig, "-n", namespace, *args]
            subprocess.run(command, check=True, capture_output=True, timeout=TIMEOUT)

        def apply_and_wait() -> None:
            run("apply", "--server-side", "--field-manager=bench", "-f", str(manifests))
            for deployment in ("bench-scheduler", "bench-worker"):
                run("rollout", "status", f"deployment/{deployment}", f"--timeout={TIMEOUT}s")

        ready = timed(apply_and_wait)
        deleted = timed(lambda: run("delete", "-f", str(manifests), "--cascade=foreground", "--wait=true"))
    return ready, deleted


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.deploy", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    kubectl = kubectl_path()
    kubeconfig = str(start_cluster(CLUSTER))
    rows = []
    try:
        for index in range(args.nodes):
            add_fake_node(kubeconfig, f"bench-{index}", arch="amd64", pods="200")
        # The first deploy on a new control plane also waits for its controllers to settle
        # (default ServiceAccount, informer caches), and kubectl fills its discovery cache.
        ours(kubeconfig, 1)
        floor(kubeconfig, 1, kubectl)
        for workers in args.workers:
            runs: dict[str, list[tuple[float, float]]] = {"ours": [], "kubectl": []}
            for run in range(args.runs):
                turns = [("ours", ours), ("kubectl", functools.partial(floor, kubectl=kubectl))]
                for who, measure in turns if run % 2 == 0 else reversed(turns):
                    runs[who].append(measure(kubeconfig, workers))
            (ready, deleted), (floor_ready, floor_deleted) = (
                [round(statistics.median(run[i] for run in runs[who]), 2) for i in (0, 1)]
                for who in ("ours", "kubectl")
            )
            rows.append(
                {
                    "workers": workers,
                    "ready_s": ready,
                    "kubectl_ready_s": floor_ready,
                    "ready_ratio": round(ready / floor_ready, 2),
                    "delete_s": deleted,
                    "kubectl_delete_s": floor_deleted,
                    "delete_ratio": round(deleted / floor_deleted, 2),
                    "runs": runs,
                }
            )
    finally:
        stop_cluster(CLUSTER)
    print("workers | ready: ours / kubectl (s) | ratio | delete: ours / kubectl (s) | ratio")
    for row in rows:
        print(
            f"{row['workers']} | {row['ready_s']} / {row['kubectl_ready_s']} | {row['ready_ratio']}"
            f" | {row['delete_s']} / {row['kubectl_delete_s']} | {row['delete_ratio']}"
        )
    print(json.dumps({"nodes": args.nodes, "runs": args.runs, "results": rows}))


if __name__ == "__main__":
    main()
