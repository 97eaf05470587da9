"""The REAL Kubernetes API server (kwok fake nodes) that the k8s-marked tests here share: one
per session, started when a test first asks for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.helpers.kwok_cluster import GPU_NODE, NODES, add_fake_node, api_client, start_cluster, stop_cluster


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    # A fresh control plane each session: one left by an earlier session (its processes gone
    # with a reboot, its etcd full of old namespaces) was restarted once and then left a
    # scheduler Deployment at 0/1 ready for 120 s.
    stop_cluster("minimaldask-test")
    path = start_cluster("minimaldask-test")
    for name, (arch, taints) in NODES.items():
        add_fake_node(path, name, arch=arch, taints=taints, **(GPU_NODE if name.startswith("gpu") else {}))
    try:
        yield str(path)
    finally:
        stop_cluster("minimaldask-test")


@pytest.fixture
def namespace(kubeconfig: str) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    with api_client(kubeconfig) as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        with api_client(kubeconfig) as api:
            client.CoreV1Api(api).delete_namespace(name)
