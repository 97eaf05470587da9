"""Specs to Kubernetes objects, through the Jinja2 templates in manifests/.

Pure and deterministic: the same spec always gives the same objects (plain dicts, ready for
server-side apply) and the same YAML. Nothing here talks to Kubernetes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml

from buildtools.cluster import contract, controller, labels, placement
from buildtools.cluster.environment import dask_env
from buildtools.cluster.kubetypes import DnsLabel, validate
from buildtools.cluster.spec_parts import Resources
from buildtools.cluster.specs import ClusterSpec, JobSpec, PrepullSpec
from buildtools.settings import DATA_ROOT

MANIFESTS_DIR = DATA_ROOT / "manifests"

DEFAULT_RBAC_NAME = "minimaldask-deployer"

# The pause container and the prepuller's init containers: they do nothing, so ask for nearly
# nothing. The memory limit leaves room for the runtime's own start-up inside the container.
PREPULL_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "1m", "memory": "8Mi"},
    "limits": {"cpu": "100m", "memory": "32Mi"},
}

# Values the templates share with the Python side, each defined once.
_CONTRACT = ("DASK_UID", "COMM_PORT_NAME", "DASHBOARD_PORT_NAME", "HEALTH_PATH", "TLS_MOUNT_PATH", "ROOT_CAPABILITIES")
_GLOBALS = {**{name: getattr(contract, name) for name in _CONTRACT}, "PREPULL_RESOURCES": PREPULL_RESOURCES}


def tojson(value: Any) -> str:
    """A value as JSON, which is YAML, in ASCII.

    Characters YAML does not allow raw (C1 controls, DEL) and any non-ASCII character are
    escaped; those outside the BMP as \\UXXXXXXXX, which YAML reads as one character (JSON's
    surrogate pairs would be read as two).
    """
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "".join(_escape(c) if not " " <= c <= "~" else c for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def nindent(text: str, width: int) -> str:
    """A newline, then `text` indented by `width` (nothing for an empty fragment), like Helm's."""
    text = str(text).strip("\n")
    return "\n" + textwrap.indent(text, " " * width) if text else ""


@functools.cache
def environment(directory: Path = MANIFESTS_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - YAML, not HTML: every value goes through tojson
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["tojson"] = tojson
    env.filters["nindent"] = nindent
    env.globals.update(_GLOBALS)
    return env


def render_template(template: str, **context: Any) -> str:
    """One template's text: YAML documents."""
    return environment().get_template(template).render(**context)


def _load(text: str) -> list[dict[str, Any]]:
    return [obj for obj in yaml.safe_load_all(text) if obj is not None]


def spec_annotation(spec: ClusterSpec) -> str:
    """The applied spec, stored on the scheduler Deployment: the fields a re-apply or an attach
    starts from (not the n_workers: the worker Deployments' replicas are their truth, scaled since)."""
    counts = {"n_workers": True, "worker_groups": {"__all__": {"n_workers"}}}
    return json.dumps(spec.model_dump(mode="json", exclude=counts), sort_keys=True)


def _annotations(spec: ClusterSpec, component: str, job: bool = False) -> dict[str, str]:
    """A Deployment's own annotations (never its pods'): what the controller follows."""
    if component == "worker":
        adapt = {controller.ADAPT_ANNOTATION: spec.adapt.policy.to_json()} if spec.adapt else {}
        resources = json.dumps(spec.dask_resources, sort_keys=True) if spec.dask_resources else None
        return adapt | ({controller.DASK_RESOURCES_ANNOTATION: resources} if resources else {})
    idle = {controller.IDLE_TIMEOUT_ANNOTATION: str(spec.idle_timeout)} if spec.idle_timeout else {}
    runner = {controller.JOB_ANNOTATION: controller.runner_name(spec.name)} if job else {}
    return {labels.SPEC_ANNOTATION: spec_annotation(spec), **idle, **runner}


def _resources(resources: Resources) -> dict[str, dict[str, str]]:
    return {"requests": dict(resources.requests), "limits": dict(resources.limits)}


def _component(
    spec: ClusterSpec, component: str, ports: list[tuple[str, int]], group: str | None = None, job: bool = False
) -> dict[str, Any]:
    """The template context of the scheduler (of a batch job's cluster: `job`), or of one
    worker group (`spec` is then the group's)."""
    name = (
        labels.component_name(spec.name, component)
        if group is None
        else labels.worker_deployment_name(spec.name, group)
    )
    group_labels = labels.group_labels(group)
    return {
        "component": component,
        "name": name,
        "labels": {**spec.labels, **labels.component_labels(spec.name, component), **group_labels},
        "annotations": _annotations(spec, component, job),
        "service_account": name if component == "scheduler" else None,
        "selector": {**labels.selector_labels(spec.name, component), **group_labels},
        "ports": [{"name": name, "port": port} for name, port in ports],
        "env": list(dask_env(spec, component).items()),
        "resources": _resources(getattr(spec.resources, component)),
        "placement": placement.pod_placement(spec, component),
    }


def network_policy_context(spec: ClusterSpec) -> dict[str, Any]:
    """The cluster's NetworkPolicy: every pod carrying the cluster's label (scheduler, workers of
    every group, a batch job's runner), let in from those same pods and from the namespace's pods
    labelled as the cluster's clients."""
    own = {labels.LABEL_CLUSTER: spec.name}
    return {
        "name": controller.network_policy_name(spec.name),
        "labels": {**spec.labels, **labels.cluster_labels(spec.name)},
        "selector": own,
        "peers": [own, {labels.LABEL_CLIENT_OF: spec.name}],
    }


def cluster_context(spec: ClusterSpec, job: bool = False) -> dict[str, Any]:
    """What the cluster's templates are rendered with (a batch job's cluster: `job`)."""
    return {
        "spec": spec,
        "network_policy": network_policy_context(spec),
        "service_name": labels.scheduler_service_name(spec.name),
        "scheduler": _component(
            spec,
            "scheduler",
            [
                (contract.COMM_PORT_NAME, contract.SCHEDULER_PORT),
                (contract.DASHBOARD_PORT_NAME, contract.DASHBOARD_PORT),
            ],
            job=job,
        ),
        "scheduler_rules": controller.permissions(spec.name, spec.worker_groups, job),
    }


def worker_context(spec: ClusterSpec, group: str | None) -> dict[str, Any]:
    """What one worker group's Deployment (None: the default group's) is rendered with."""
    group_spec = spec.group(group)
    ports = [(contract.DASHBOARD_PORT_NAME, contract.WORKER_DASHBOARD_PORT)]
    return {"spec": group_spec, "worker": _component(group_spec, "worker", ports, group)}


# The templates rendered once per cluster, with cluster_context (the workers' once per group).
CLUSTER_TEMPLATES = (
    "network-policy.yaml.j2",
    "scheduler-rbac.yaml.j2",
    "scheduler-service.yaml.j2",
    "scheduler-deployment.yaml.j2",
)


def render_cluster(spec: ClusterSpec, job: bool = False) -> list[dict[str, Any]]:
    """The cluster's NetworkPolicy (unless turned off; first: in place before a Dask pod starts),
    the scheduler's ServiceAccount, Role and RoleBinding, its Service, its Deployment (the
    cluster's root, which the controller makes every other object's owner), then the workers'
    Deployments (the default group's, then each worker group's), in that order: each exists
    before what refers to it. The cluster of a batch job (`job`) follows its runner Job."""
    context = cluster_context(spec, job)
    objects = [obj for template in CLUSTER_TEMPLATES for obj in _load(render_template(template, **context))]
    for group in (None, *spec.worker_groups):
        objects += _load(render_template("worker-deployment.yaml.j2", **worker_context(spec, group)))
    return objects


def runner_context(job: JobSpec) -> dict[str, Any]:
    """What a batch job's runner Job is rendered with: a pod placed like the scheduler's, with
    the cluster's identity rules and TLS Secret, and the runner's own image, command and resources."""
    spec = job.cluster.model_copy(update={"image": job.runner_image})
    runner = {
        "component": "runner",
        "name": controller.runner_name(spec.name),
        "labels": {**spec.labels, **labels.component_labels(spec.name, "runner")},
        "env": list((dask_env(spec, "runner") | {key: job.env[key] for key in sorted(job.env)}).items()),
        "resources": _resources(job.resources),
        "placement": placement.pod_placement(spec, "scheduler"),
    }
    return {"spec": spec, "job": job, "runner": runner}


def render_job(job: JobSpec) -> list[dict[str, Any]]:
    """A batch job: its runner Job first, then its cluster's objects (render_cluster), which
    follow the Job: the Job's end deletes the cluster, and the Job's deletion (its TTL) too."""
    return _load(render_template("runner-job.yaml.j2", **runner_context(job))) + render_cluster(job.cluster, job=True)


def cluster_prepull_spec(spec: ClusterSpec) -> PrepullSpec:
    """The prepuller of a cluster's image: on the workers' nodes, with the cluster's identity rules."""
    return PrepullSpec(
        name=spec.name,
        namespace=spec.namespace,
        images=[spec.image],
        image_pull_secrets=spec.image_pull_secrets,
        platform_uid=spec.platform_uid,
        **placement.prepull_placement(spec),
    )


def planned_objects(spec: ClusterSpec, prepull: bool) -> list[dict[str, Any]]:
    """Everything a start applies, in order (the prepuller first, when asked for): the one list
    that the preflight's dry run checks and the deploy applies (with a new TLS cluster's Secret,
    which the deploy adds: key material is never rendered)."""
    return (render_prepuller(cluster_prepull_spec(spec)) if prepull else []) + render_cluster(spec)


def images_checksum(images: Iterable[str]) -> str:
    """The sha256 of the sorted, de-duplicated image list: it changes iff the set of images does,
    and with it the prepuller's pod template, so that its pods pull the new set."""
    return hashlib.sha256("\n".join(sorted(set(images))).encode()).hexdigest()


def prepuller_context(spec: PrepullSpec) -> dict[str, Any]:
    return {
        "spec": spec,
        "name": labels.component_name(spec.name, "prepuller"),
        "labels": labels.component_labels(spec.name, "prepuller"),
        "selector": labels.selector_labels(spec.name, "prepuller"),
        "checksum": images_checksum(spec.images),
        "placement": prepuller_placement(spec),
    }


def prepuller_placement(spec: PrepullSpec) -> dict[str, Any]:
    """The prepuller's nodeSelector, tolerations and affinity; the affinity keeps it to the
    architectures every image has (a pull of a platform an image lacks would fail)."""
    found = {
        "nodeSelector": dict(spec.node_selector),
        "tolerations": list(spec.tolerations),
        "affinity": placement.with_arch(spec.affinity, placement.common_platforms(spec.images)),
    }
    return {key: value for key, value in found.items() if value}


def render_prepuller(spec: PrepullSpec) -> list[dict[str, Any]]:
    """The prepuller DaemonSet."""
    return _load(render_template("prepuller-daemonset.yaml.j2", **prepuller_context(spec)))


def rbac_context(namespace: str, name: str = DEFAULT_RBAC_NAME) -> dict[str, Any]:
    return {
        "namespace": validate(DnsLabel, "namespace", namespace),
        "name": validate(DnsLabel, "name", name),
        "labels": {**labels.BASE_LABELS, "app.kubernetes.io/component": "deployer"},
    }


def render_rbac(namespace: str, name: str = DEFAULT_RBAC_NAME) -> list[dict[str, Any]]:
    """The deployer's ServiceAccount, Role and RoleBinding, all named `name`, in `namespace`."""
    return _load(render_template("rbac.yaml.j2", **rbac_context(namespace, name)))


class _Dumper(yaml.SafeDumper):
    """Block YAML with indented sequences (yamllint's default style)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """Objects as one multi-document YAML stream, each document starting with `---`."""
    return yaml.dump_all(
        [dict(obj) for obj in objects], Dumper=_Dumper, explicit_start=True, sort_keys=False, width=1 << 16
    )
