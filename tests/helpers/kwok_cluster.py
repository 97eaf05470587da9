"""A real Kubernetes control plane with kwok fake nodes, for the tests and bench/deploy.py.

``start_cluster`` runs ``env/k8s-cluster.sh up`` (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and the kwok controller as local
processes on 127.0.0.1, from binaries cached by ``env/k8s-build.sh``) and
returns the kubeconfig path. The cluster starts without nodes:
``add_fake_node`` registers Nodes that the kwok controller manages, so pods
scheduled to them are marked Running and Ready without running anything.

A pytest session fixture is expected to look like::

    @pytest.fixture(scope="session")
    def kubeconfig() -> Iterator[Path]:
        path = start_cluster("minimaldask-test")
        try:
            yield path
        finally:
            stop_cluster("minimaldask-test")
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.helpers import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from kubernetes.client import ApiClient, V1Node

CLUSTER_SCRIPT = REPO_ROOT / "env" / "k8s-cluster.sh"

#: Annotation by which kwokctl's kwok controller picks the nodes it manages.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

#: The log of every container on a fake node (served by kwok, see env/k8s-cluster.sh).
FAKE_LOG_LINE = "kwok fake container: nothing runs here"

_HTTP_NOT_FOUND = 404
_HTTP_CONFLICT = 409

#: A taint as ``"key=value:Effect"`` / ``"key:Effect"`` (kubectl syntax) or
#: as a ``(key, value, effect)`` tuple.
Taint = str | tuple[str, str | None, str]


# The fake nodes of the tests' cluster (tests/buildtools/cluster/conftest.py): name -> (arch, taints).
GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"
GPU_LABEL = "nvidia.com/gpu.present"
NODES = {  # name: (arch, taints)
    "amd64-1": ("amd64", ()),
    "amd64-2": ("amd64", ()),
    "amd64-3": ("amd64", ()),
    "arm64-1": ("arm64", ()),
    "arm64-2": ("arm64", ()),
    "arm-1": ("arm", ()),  # 32-bit ARM (linux/arm/v7): kubernetes.io/arch=arm
    "gpu-1": ("amd64", (GPU_TAINT,)),
}
SCHEDULABLE = 6  # the nodes without a taint
GPU_NODE = {"labels": {GPU_LABEL: "true"}, "extra_resources": {"nvidia.com/gpu": "8"}}


def _run_script(*args: str, timeout: float) -> str:
    proc = subprocess.run(
        ["sh", str(CLUSTER_SCRIPT), *args],
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=True,
        env=os.environ.copy(),
    )
    return proc.stdout


def start_cluster(name: str = "minimaldask", timeout: float = 3600) -> Path:
    """Start (or reuse) the local cluster NAME; return its kubeconfig path.

    The first call on a machine builds the binaries (tens of minutes on two
    cores), hence the large default ``timeout``; later calls take seconds.
    """
    out = _run_script("up", name, timeout=timeout).strip().splitlines()
    if not out:
        raise RuntimeError(f"{CLUSTER_SCRIPT} up {name} printed no kubeconfig path")
    path = Path(out[-1])
    if not path.is_file():
        raise RuntimeError(f"kubeconfig {path} of cluster {name} does not exist")
    return path


def stop_cluster(name: str = "minimaldask", timeout: float = 120) -> None:
    """Delete the local cluster NAME and stop all its processes."""
    _run_script("down", name, timeout=timeout)


def api_client(kubeconfig: Path | str) -> ApiClient:
    """A ``kubernetes`` client bound to KUBECONFIG (not to ~/.kube/config)."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


def _taint(spec: Taint) -> dict[str, str]:
    if isinstance(spec, tuple):
        key, value, effect = spec
    else:
        key_value, sep, effect = spec.rpartition(":")
        if not sep or not key_value:
            raise ValueError(f"taint {spec!r} is not 'key[=value]:Effect'")
        key, _, value = key_value.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


def fake_node_manifest(
    name: str,
    arch: str = "amd64",
    taints: Iterable[Taint] = (),
    labels: Mapping[str, str] | None = None,
    *,
    cpu: str = "32",
    memory: str = "256Gi",
    pods: str = "110",
    extra_resources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Node object of a kwok-managed fake node (as a plain dict); ``extra_resources``
    adds capacity such as ``{"nvidia.com/gpu": "4"}``."""
    node_labels = {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
        "node-role.kubernetes.io/agent": "",
        "type": "kwok",
    }
    node_labels.update(labels or {})
    resources = {"cpu": cpu, "memory": memory, "pods": pods, **(extra_resources or {})}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels,
            "annotations": {
                KWOK_NODE_ANNOTATION: "fake",
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {"taints": [_taint(t) for t in taints]},
        "status": {
            "allocatable": dict(resources),
            "capacity": dict(resources),
            "nodeInfo": {
                "architecture": arch,
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "bootID": "",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "machineID": "",
                "osImage": "",
                "systemUUID": "",
            },
            "phase": "Running",
        },
    }


def add_fake_node(
    kubeconfig: Path | str,
    name: str,
    arch: str = "amd64",
    taints: Iterable[Taint] = (),
    labels: Mapping[str, str] | None = None,
    extra_resources: Mapping[str, str] | None = None,
    **resources: str,
) -> V1Node:
    """Create (or update) a kwok fake Node NAME of architecture ARCH.

    ``taints`` e.g. ``["nvidia.com/gpu=present:NoSchedule"]``; ``labels`` are
    added to the usual ``kubernetes.io/arch``/``os``/``hostname`` ones;
    ``resources`` may set ``cpu``, ``memory``, ``pods`` (capacity strings).
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    body = fake_node_manifest(name, arch, taints, labels, extra_resources=extra_resources, **resources)
    with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        try:
            node: V1Node = core.create_node(body)
        except ApiException as exc:
            if exc.status != _HTTP_CONFLICT:
                raise
            meta, spec = body["metadata"], body["spec"]
            node = core.patch_node(
                name,
                {
                    "metadata": {
                        "labels": meta["labels"],
                        "annotations": meta["annotations"],
                    },
                    "spec": spec,
                },
            )
        return node


def delete_fake_node(kubeconfig: Path | str, name: str) -> None:
    """Delete Node NAME (no error if it does not exist)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with api_client(kubeconfig) as api:
        try:
            client.CoreV1Api(api).delete_node(name)
        except ApiException as exc:
            if exc.status != _HTTP_NOT_FOUND:
                raise


def service_account_token(kubeconfig: Path | str, namespace: str, account: str) -> str:
    """A short-lived token of the ServiceAccount (the TokenRequest API, as the kubelet gets one)."""
    from kubernetes import client

    with api_client(kubeconfig) as api:
        request = {"spec": {"expirationSeconds": 3600}}
        return str(
            client.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request).status.token
        )


def kubeconfig_for_service_account(kubeconfig: Path | str, namespace: str, account: str, path: Path) -> str:
    """A kubeconfig that authenticates as the ServiceAccount, with a short-lived token."""
    token = service_account_token(kubeconfig, namespace, account)
    config = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    config["users"] = [{"name": "sa", "user": {"token": token}}]
    context["context"]["user"] = "sa"
    config["contexts"] = [context]
    path.write_text(yaml.safe_dump(config))
    return str(path)
