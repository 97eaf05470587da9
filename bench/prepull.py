"""What prepulling and layer compression save: worker pod start time on the REAL node
(env/k8s-node.sh) with the image already in the node's containerd ("warm") versus a cold pull
from the local registry ("cold": the image is removed from that containerd, with its content,
before each run).

Start time = pod creation until the worker container runs (Dask's entrypoint with WORKER=true),
polled every 50 ms through the API. Images: the Debian image with zstd layers and the same image
with gzip layers (its -gzip tag; both must be in the local registry), and a deliberately large
one built here (FROM the Debian image plus a layer of random data). With --rate, the registry's
replies (source port of the registry, on the loopback interface) are shaped to that rate with
tc for the run, as a node pulling from a remote registry sees it; without, pulls run at loopback
speed. Prints a table and JSON (median of --runs runs each).

usage: python -m bench.prepull [--runs 3] [--large-mb 300] [--rate 100mbit] [--node minimaldask-e2e] [--down]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client

from buildtools.images.plan import GZIP_TAG_SUFFIX
from buildtools.images.registry import Registry, split_ref
from buildtools.settings import Settings
from tests.helpers.kwok_cluster import api_client
from tests.helpers.node import Node

DEBIAN = "minimaldask/debian:2026.8.0-py3.13"
NAMESPACE = "bench-prepull"


def sh(*command: str, timeout: float = 600) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=timeout).stdout


def large_image(registry: str, base: str, megabytes: int) -> str:
    """FROM the Debian image plus MEGABYTES of random data (incompressible), built once."""
    ref = f"{registry}/minimaldask-bench/large:{megabytes}mb"
    _, repository, tag = split_ref(ref)
    try:
        Registry(registry).manifest(repository, tag)
    except KeyError:
        pass  # not built yet
    else:
        return ref
    with tempfile.TemporaryDirectory() as context:
        with open(Path(context) / "random.bin", "wb") as out:
            for _ in range(megabytes):
                out.write(os.urandom(1 << 20))
        (Path(context) / "Dockerfile").write_text(f"FROM {base}\nCOPY random.bin /opt/bench/random.bin\n")
        sh("docker", "build", "--platform", "linux/amd64", "-q", "-t", ref, context, timeout=1800)
    sh("docker", "push", "-q", ref, timeout=1800)
    return ref


def remove_image(node: Node, ref: str) -> None:
    """Every name of the image (tag, repo@digest, the CRI's sha256:ID) and, synchronously, its content."""
    rows = node.table("images", "list")
    targets = {row[2] for row in rows if row[0] == ref or row[0].startswith(ref.rsplit(":", 1)[0] + "@")}
    names = [row[0] for row in rows if row[2] in targets]
    if names:
        node.ctr("images", "remove", "--sync", *names)


def has_image(node: Node, ref: str) -> bool:
    return any(row[0] == ref for row in node.table("images", "list"))


def wait_unused(node: Node, refs: list[str], timeout: float = 120) -> None:
    """Until no container (even an exited one) uses the images: their snapshots would make a pull warm.

    The kubelet removes the containers of deleted pods on its own; past TIMEOUT they are removed here.
    """
    deadline = time.monotonic() + timeout
    while True:
        users = [row[0] for row in node.table("containers", "list") if len(row) > 1 and row[1] in refs]
        if not users:
            return
        if time.monotonic() > deadline:
            for container in users:
                node.ctr("tasks", "kill", "-s", "KILL", container, check=False)
                time.sleep(0.5)
                if any(row[0] == container for row in node.table("tasks", "list")):
                    node.ctr("tasks", "delete", "--force", container)
                node.ctr("containers", "delete", container)
            return
        time.sleep(1)


def worker_pod(name: str, image: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "worker",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    # A worker whose scheduler never answers: it starts and keeps retrying.
                    "env": [
                        {"name": "WORKER", "value": "true"},
                        {"name": "DASK_SCHEDULER_ADDRESS", "value": "tcp://127.0.0.1:9"},
                    ],
                }
            ],
        },
    }


def start_time(core: client.CoreV1Api, image: str, timeout: float = 900) -> float:
    name = f"worker-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    core.create_namespaced_pod(NAMESPACE, worker_pod(name, image))
    try:
        while True:
            pod = core.read_namespaced_pod(name, NAMESPACE)
            statuses = pod.status.container_statuses or []
            if statuses and statuses[0].state.running:
                return time.monotonic() - started
            if statuses and statuses[0].state.waiting and "Err" in (statuses[0].state.waiting.reason or ""):
                raise RuntimeError(f"{name}: {statuses[0].state.waiting.reason}: {statuses[0].state.waiting.message}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{name} not running after {timeout} s")
            time.sleep(0.05)
    finally:
        core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0)
        while core.list_namespaced_pod(NAMESPACE, field_selector=f"metadata.name={name}").items:
            time.sleep(0.2)


@contextmanager
def shaped(registry: str, rate: str | None) -> Iterator[None]:
    """Replies from the registry's port on the loopback interface limited to RATE (tc htb), for
    the duration; every other loopback flow goes through an unlimited class. (This kernel has
    htb and tbf, not prio or netem.)"""
    if not rate:
        yield
        return
    port = registry.rsplit(":", 1)[1]
    sh("tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10")
    try:
        for classid, limit in (("1:10", "100gbit"), ("1:20", rate)):
            sh("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", classid, "htb",
               "rate", limit, "ceil", limit, "burst", "256k", "cburst", "256k")  # fmt: skip
        sh("tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
           "match", "ip", "sport", port, "0xffff", "flowid", "1:20")  # fmt: skip
        yield
    finally:
        sh("tc", "qdisc", "del", "dev", "lo", "root")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prepull", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large-mb", type=int, default=300)
    parser.add_argument("--rate", default=None, help="shape the registry's replies to this tc rate, e.g. 100mbit")
    parser.add_argument("--node", default="minimaldask-e2e", help="node name for env/k8s-node.sh (reused if up)")
    parser.add_argument("--down", action="store_true", help="stop the node at the end")
    args = parser.parse_args()

    registry = Settings.load().registry
    debian = f"{registry}/{DEBIAN}"
    images = {
        "debian zstd": debian,
        "debian gzip": f"{debian}{GZIP_TAG_SUFFIX}",
        f"large (+{args.large_mb} MB)": large_image(registry, debian, args.large_mb),
    }
    for ref in images.values():
        _, repository, tag = split_ref(ref)
        Registry(registry).manifest(repository, tag)  # KeyError: build it first (see the docstring)
    node = Node.up(args.node)
    rows = []
    try:
        with api_client(node.kubeconfig) as api, shaped(registry, args.rate):
            core = client.CoreV1Api(api)
            if not core.list_namespace(field_selector=f"metadata.name={NAMESPACE}").items:
                core.create_namespace({"metadata": {"name": NAMESPACE}})
            for label, ref in images.items():
                cold, warm = [], []
                for _ in range(args.runs):
                    # Every bench image goes: the large one shares the Debian image's layers.
                    wait_unused(node, list(images.values()))
                    for other in images.values():
                        remove_image(node, other)
                    assert not has_image(node, ref)
                    cold.append(start_time(core, ref))
                    warm.append(start_time(core, ref))  # the image is now on the node
                row = {
                    "image": label,
                    "ref": ref,
                    "cold_s": round(statistics.median(cold), 2),
                    "warm_s": round(statistics.median(warm), 2),
                    "cold_runs": [round(t, 2) for t in cold],
                    "warm_runs": [round(t, 2) for t in warm],
                }
                row["ratio"] = round(row["cold_s"] / row["warm_s"], 1)
                rows.append(row)
    finally:
        if args.down:
            node.down()
    print(f"registry replies: {args.rate or 'loopback, unshaped'}")
    print(f"{'image':<20} | {'cold pull (s)':>13} | {'prepulled (s)':>13} | {'cold/prepulled':>14}")
    for row in rows:
        print(f"{row['image']:<20} | {row['cold_s']:>13} | {row['warm_s']:>13} | {row['ratio']:>14}")
    summary = {
        "node": args.node,
        "node_up_s": round(node.start_seconds, 1),
        "runs": args.runs,
        "rate": args.rate,
        "results": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
