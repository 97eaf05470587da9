"""How a cluster's objects are named and labelled, and found again by their labels.

Every object of cluster NAME is called NAME-<component> and carries its cluster's labels;
selectors use only the two labels that never change (a Deployment's selector is immutable).
"""

from __future__ import annotations

from buildtools.cluster.controller import CLUSTER_LABEL, COMPONENT_LABEL, GROUP_LABEL, pod_selector, worker_name
from buildtools.errors import ConfigError

COMPONENTS = ("scheduler", "worker", "prepuller", "runner")

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_CLUSTER = CLUSTER_LABEL
LABEL_COMPONENT = COMPONENT_LABEL
LABEL_GROUP = GROUP_LABEL
# On a pod that is a client of cluster NAME (a notebook, a service), with the value NAME: the
# cluster's NetworkPolicy lets it in (docs/TLS.md). Set by users on their own pods, never by minimaldask.
LABEL_CLIENT_OF = "minimaldask/client-of"
BASE_LABELS = {LABEL_NAME: "dask", LABEL_MANAGED_BY: "minimaldask"}
# Set on every object from the cluster's name: a spec's own labels must not set them.
MANAGED_LABELS = (LABEL_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_CLUSTER, LABEL_COMPONENT, LABEL_GROUP)

# Objects are named <name>-<component>, so a name leaves room for the longest suffix.
NAME_MAX_LENGTH = 63 - max(len(f"-{component}") for component in COMPONENTS)


def component_name(name: str, component: str) -> str:
    """The name of a cluster's object for one component: <name>-scheduler, <name>-worker, <name>-prepuller."""
    if component not in COMPONENTS:
        raise ConfigError(f"component must be one of {', '.join(COMPONENTS)}, got {component!r}")
    return f"{name}-{component}"


def worker_deployment_name(name: str, group: str | None = None) -> str:
    """The workers' Deployment of the default group (None), or of a worker group: <name>-worker-<group>."""
    return worker_name(name, group)


def worker_pod_selector(name: str, group: str | None = None) -> str:
    """The pods of one worker group's Deployment (None: the default group's), by the rule the
    controller uses (controller.pod_selector), without reading the Deployment."""
    return pod_selector({**selector_labels(name, "worker"), **group_labels(group)})


def group_labels(group: str | None) -> dict[str, str]:
    """What a worker group's Deployment, pods and selector add; the default group's add nothing
    (its selector, immutable, predates groups; the controller excludes the groups' pods from it)."""
    return {LABEL_GROUP: group} if group else {}


def scheduler_service_name(name: str) -> str:
    return component_name(name, "scheduler")


def cluster_labels(name: str) -> dict[str, str]:
    """The labels every object of cluster `name` carries."""
    return {**BASE_LABELS, LABEL_INSTANCE: name, LABEL_CLUSTER: name}


def component_labels(name: str, component: str) -> dict[str, str]:
    component_name(name, component)  # checks the component
    return {**cluster_labels(name), LABEL_COMPONENT: component}


def selector_labels(name: str, component: str) -> dict[str, str]:
    """The (immutable) selector of a component's pods: a subset of `component_labels`."""
    labels = component_labels(name, component)
    return {key: labels[key] for key in (LABEL_CLUSTER, LABEL_COMPONENT)}


def label_selector(name: str, component: str | None = None) -> str:
    """A label selector string for list/watch calls: the cluster's objects, or one component's."""
    labels = {LABEL_CLUSTER: name} if component is None else selector_labels(name, component)
    return ",".join(f"{key}={value}" for key, value in labels.items())


# On the scheduler Deployment: the spec the cluster was applied with (JSON, without n_workers),
# from which a re-apply and an attach start.
SPEC_ANNOTATION = "minimaldask/cluster-spec"
