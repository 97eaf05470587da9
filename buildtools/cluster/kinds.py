"""The Kubernetes kinds this package reads and writes, each named once with its API version,
so a kind and its version never travel apart as two strings that can disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    api_version: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Kind:
        """The kind of an API object (a manifest or what the server returned)."""
        return cls(obj["apiVersion"], obj["kind"])


DEPLOYMENT = Kind("apps/v1", "Deployment")
DAEMONSET = Kind("apps/v1", "DaemonSet")
REPLICASET = Kind("apps/v1", "ReplicaSet")
JOB = Kind("batch/v1", "Job")
POD = Kind("v1", "Pod")
SERVICE = Kind("v1", "Service")
SECRET = Kind("v1", "Secret")
SERVICE_ACCOUNT = Kind("v1", "ServiceAccount")
NAMESPACE = Kind("v1", "Namespace")
NODE = Kind("v1", "Node")
ROLE = Kind("rbac.authorization.k8s.io/v1", "Role")
ROLE_BINDING = Kind("rbac.authorization.k8s.io/v1", "RoleBinding")
NETWORK_POLICY = Kind("networking.k8s.io/v1", "NetworkPolicy")
