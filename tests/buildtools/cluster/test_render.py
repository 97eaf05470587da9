"""Rendering specs to manifests: valid Kubernetes objects, consistent labels, locked-down pods, lint-clean YAML."""

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from buildtools.cluster import contract, controller, labels, placement, render
from buildtools.cluster.address import scheduler_address
from buildtools.cluster.specs import ClusterSpec, JobSpec, PrepullSpec
from buildtools.errors import ConfigError

# The nearest schema to the test control plane's Kubernetes (env/versions.env: v1.33.x) that
# kubernetes-validate ships: it has 1.33 itself.
K8S_VERSION = "1.33"
IMAGE = "registry.example:5000/minimaldask/debian:2026.8.0"
YAMLLINT = YamlLintConfig("extends: default\nrules:\n  document-start: disable\n  line-length: disable\n")
TOLERATIONS = [{"key": "dedicated", "operator": "Equal", "value": "dask", "effect": "NoSchedule"}]
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}
            ]
        }
    }
}


REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
ALL_ARCHES = {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm", "arm64"]}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def arch_affinity(*expressions: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": list(expressions)}]}}}


def deployments(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scheduler's Deployment, then the workers'."""
    return [obj for obj in objects if obj["kind"] == "Deployment"]


def cluster(**overrides: Any) -> ClusterSpec:
    return ClusterSpec(**{"name": "demo", "namespace": "dask", "image": IMAGE, **overrides})


def prepull(**overrides: Any) -> PrepullSpec:
    return PrepullSpec(**{"name": "demo", "namespace": "dask", "images": [IMAGE], **overrides})


FULL = cluster(
    n_workers=3,
    resources={
        "scheduler": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "worker": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1500m", "memory": "2Gi"}},
    },
    env={"DASK_DISTRIBUTED__WORKER__DAEMON": "False", "GREETING": 'he said "yes": on\n# {{ not a template }}'},
    pip_packages=["dask[array]", "pandas>=2"],
    scheduler_args=["--idle-timeout", "1h"],
    worker_args=["--nworkers", "1"],
    service_type="NodePort",
    image_pull_secrets=["regcred"],
    node_selector={"kubernetes.io/os": "linux"},
    tolerations=TOLERATIONS,
    worker_grace_seconds=120,
    labels={"team": "data", "example.org/cost-center": "42"},
)
GPU = cluster(
    image="registry.example:5000/minimaldask/debian-dataframe:2026.8.0-py3.13",
    resources={"worker": {"limits": {"nvidia.com/gpu": "1"}}},
    node_selector={"kubernetes.io/os": "linux"},
    placement={
        "scheduler": {"node_selector": {"pool": "cpu"}, "tolerations": TOLERATIONS},
        "worker": {"node_selector": {"pool": "gpu"}, "affinity": AFFINITY},
    },
)
ROOT_TLS = cluster(system_packages=["curl"], tls_secret="dask-tls", service_type="LoadBalancer", n_workers=0)
PLATFORM_UID = cluster(platform_uid=True, tls_secret="dask-tls", pip_packages=["toolz"])
GROUPS = cluster(
    adapt={"minimum": 1, "maximum": 10},
    env={"A": "1"},
    worker_groups={
        "gpu": {
            "n_workers": 0,
            "image": "registry.example:5000/minimaldask/debian-dataframe:2026.8.0-py3.13",
            "resources": {"limits": {"nvidia.com/gpu": "1"}},
            "env": {"B": "2"},
            "worker_args": ["--nworkers", "1"],
            "dask_resources": {"GPU": 1, "VRAM": 16e9},
            "placement": {"node_selector": {"pool": "gpu"}},
            "adapt": {"maximum": 4},
        }
    },
)
CLUSTERS = {
    "minimal": cluster(),
    "full": FULL,
    "root-tls": ROOT_TLS,
    "gpu": GPU,
    "platform-uid": PLATFORM_UID,
    "groups": GROUPS,
    "no-network-policy": cluster(network_policy=False),
    "own-tls": cluster(tls=True),
}
PREPULLERS = {
    "minimal": prepull(),
    "full": prepull(
        images=[IMAGE, "registry.example:5000/minimaldask/alpine:2026.8.0", IMAGE],
        tolerations=[{"operator": "Exists"}],
        node_selector={"dask.org/node": "true"},
        affinity=AFFINITY,
        priority_class="dask-low",
        image_pull_secrets=["regcred"],
        pause_image="registry.example:5000/pause:3.10",
    ),
    "platform-uid": prepull(platform_uid=True),
}


COMMAND = ["python", "-c", "import distributed; print(distributed.Client().submit(sum, [1, 2]).result())"]
JOBS = {
    "minimal": JobSpec(cluster=cluster(), command=COMMAND),
    "full": JobSpec(
        cluster=PLATFORM_UID,
        command=COMMAND,
        image="registry.example:5000/other:1",
        env={"RUN": "1"},
        resources={"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}},
        backoff_limit=2,
        active_deadline_seconds=600,
        ttl_seconds_after_finished=30,
    ),
    "root-tls": JobSpec(cluster=ROOT_TLS, command=COMMAND),
}


def all_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for label, spec in CLUSTERS.items():
        for obj in render.render_cluster(spec):
            yield f"cluster-{label}-{obj['kind']}-{obj['metadata']['name']}", obj
    for label, job in JOBS.items():
        for obj in render.render_job(job):
            yield f"job-{label}-{obj['kind']}-{obj['metadata']['name']}", obj
    for label, prepull_spec in PREPULLERS.items():
        for obj in render.render_prepuller(prepull_spec):
            yield f"prepuller-{label}-{obj['kind']}", obj
    for obj in render.render_rbac("dask"):
        yield f"rbac-{obj['kind']}", obj


OBJECTS = dict(all_objects())


def by_kind(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return obj


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    names = [item["name"] for item in container["env"]]
    assert len(names) == len(set(names)), f"duplicate env names break server-side apply: {names}"
    return {item["name"]: item["value"] for item in container["env"]}


# --- every object is valid Kubernetes ---


@pytest.mark.parametrize("obj", OBJECTS.values(), ids=OBJECTS.keys())
def test_objects_validate_against_kubernetes_schema(obj: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == K8S_VERSION


def test_schema_validation_is_strict() -> None:
    deployment = copy.deepcopy(by_kind(render.render_cluster(cluster()), "Deployment", "demo-worker"))
    pod_spec(deployment)["containers"][0]["securityContext"]["runAsRoot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_every_object_is_namespaced_and_labelled() -> None:
    for key, obj in OBJECTS.items():
        assert obj["metadata"]["namespace"] == "dask", key
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "dask", key
        assert labels["app.kubernetes.io/managed-by"] == "minimaldask", key


# --- the cluster ---


def test_cluster_objects_in_order() -> None:
    objects = render.render_cluster(cluster())
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("NetworkPolicy", "demo-dask"),
        ("ServiceAccount", "demo-scheduler"),
        ("Role", "demo-scheduler"),
        ("RoleBinding", "demo-scheduler"),
        ("Service", "demo-scheduler"),
        ("Deployment", "demo-scheduler"),
        ("Deployment", "demo-worker"),
    ]


@pytest.mark.parametrize("spec", CLUSTERS.values(), ids=CLUSTERS.keys())
def test_labels_and_selectors_consistent(spec: ClusterSpec) -> None:
    objects = render.render_cluster(spec)
    service = by_kind(objects, "Service")
    scheduler = by_kind(objects, "Deployment", "demo-scheduler")
    worker = by_kind(objects, "Deployment", "demo-worker")
    for deployment, component in ((scheduler, "scheduler"), (worker, "worker")):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert selector == labels.selector_labels("demo", component)
        assert pod_labels == {**spec.labels, **labels.component_labels("demo", component)}
        assert deployment["metadata"]["labels"] == pod_labels
    scheduler_pods = scheduler["spec"]["template"]["metadata"]["labels"]
    worker_pods = worker["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= scheduler_pods.items()
    assert not service["spec"]["selector"].items() <= worker_pods.items()
    assert service["metadata"]["labels"] == scheduler["metadata"]["labels"]


def test_extra_labels_stay_out_of_selectors() -> None:
    objects = render.render_cluster(FULL)
    for obj in objects:
        assert obj["metadata"]["labels"]["team"] == "data"
    selectors = [
        by_kind(objects, "Service")["spec"]["selector"],
        *(deployment["spec"]["selector"]["matchLabels"] for deployment in deployments(objects)),
        by_kind(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]
    assert not [selector for selector in selectors if "team" in selector]


def test_service_ports_and_type() -> None:
    service = by_kind(render.render_cluster(cluster()), "Service")
    assert service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(ports) == {"tcp-comm", "http-dashboard"}
    assert ports["tcp-comm"]["port"] == 8786
    assert ports["http-dashboard"]["port"] == 8787
    scheduler = by_kind(render.render_cluster(cluster()), "Deployment", "demo-scheduler")
    container_ports = {p["name"]: p["containerPort"] for p in pod_spec(scheduler)["containers"][0]["ports"]}
    assert container_ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    for port in ports.values():
        assert port["targetPort"] in container_ports
    assert by_kind(render.render_cluster(FULL), "Service")["spec"]["type"] == "NodePort"
    assert by_kind(render.render_cluster(ROOT_TLS), "Service")["spec"]["type"] == "LoadBalancer"


def test_scheduler_deployment() -> None:
    deployment = by_kind(render.render_cluster(FULL), "Deployment", "demo-scheduler")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = pod_spec(deployment)["containers"]
    assert container["image"] == IMAGE
    env = env_of(container)
    assert env["WORKER"] == "false"
    assert env["PORT"] == "8786"
    assert env["DASHBOARD_PORT"] == "8787"
    assert env["ARGUMENTS"] == "--idle-timeout 1h"
    assert env["GREETING"] == FULL.env["GREETING"]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http-dashboard"}


def test_worker_deployment() -> None:
    deployment = by_kind(render.render_cluster(FULL), "Deployment", "demo-worker")
    assert deployment["spec"]["replicas"] == 3
    spec = pod_spec(deployment)
    assert spec["terminationGracePeriodSeconds"] == 120
    (container,) = spec["containers"]
    env = env_of(container)
    assert env["WORKER"] == "true"
    assert env["DASK_SCHEDULER_ADDRESS"] == "tls://demo-scheduler.dask.svc:8786"
    assert env["DASHBOARD_PORT"] == "8788"
    assert env["WORKER_NTHREADS"] == "2"
    assert env["WORKER_MEMORY_LIMIT"] == str(2 * 1024**3)
    assert env["ARGUMENTS"] == "--nworkers 1"
    assert env["EXTRA_PIP_PACKAGES"] == "dask[array] pandas>=2"
    assert container["ports"] == [{"name": "http-dashboard", "containerPort": 8788, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http-dashboard"}
    assert "livenessProbe" not in container
    assert container["resources"]["limits"] == {"cpu": "1500m", "memory": "2Gi"}
    assert spec["tolerations"] == TOLERATIONS
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    default = by_kind(render.render_cluster(cluster()), "Deployment", "demo-worker")
    assert pod_spec(default)["terminationGracePeriodSeconds"] == 60


def test_no_resources_no_scheduling_options() -> None:
    for deployment in deployments(render.render_cluster(cluster(tls=False))):
        spec = pod_spec(deployment)
        assert spec["containers"][0]["resources"] == {}
        assert not {"tolerations", "nodeSelector", "imagePullSecrets", "volumes"} & set(spec)
        assert "WORKER_NTHREADS" not in env_of(spec["containers"][0])
        # The Debian image is built for amd64, arm64 and arm/v7: its pods go to those nodes only.
        assert spec["affinity"] == arch_affinity(ALL_ARCHES)


def test_a_cluster_with_its_own_tls_mounts_its_secret_read_only() -> None:
    for deployment in deployments(render.render_cluster(cluster(tls=True))):
        spec = pod_spec(deployment)
        assert [v["secret"]["secretName"] for v in spec["volumes"]] == ["demo-tls"]
        mount = {"name": "tls", "mountPath": "/etc/dask/tls", "readOnly": True}
        assert spec["containers"][0]["volumeMounts"] == [mount]
        assert env_of(spec["containers"][0])["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "true"


# --- placement ---


def test_each_component_has_its_own_placement_and_gpu_workers_their_toleration() -> None:
    objects = render.render_cluster(GPU)
    scheduler = pod_spec(by_kind(objects, "Deployment", "demo-scheduler"))
    worker = pod_spec(by_kind(objects, "Deployment", "demo-worker"))
    dataframe = {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}  # no arm/v7 build
    assert scheduler["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "cpu"}
    assert scheduler["tolerations"] == TOLERATIONS
    assert scheduler["affinity"] == arch_affinity(dataframe)
    assert worker["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "gpu"}
    assert worker["tolerations"] == [GPU_TOLERATION]
    (term,) = worker["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        *AFFINITY["nodeAffinity"][REQUIRED]["nodeSelectorTerms"][0]["matchExpressions"],
        dataframe,
    ]
    assert env_of(worker["containers"][0])["GPU_WORKER"] == "true"
    assert "GPU_WORKER" not in env_of(scheduler["containers"][0])


def test_image_platforms_decide_the_architectures() -> None:
    def affinity(**overrides: Any) -> Any:
        return pod_spec(deployments(render.render_cluster(cluster(**overrides)))[1]).get("affinity")

    assert affinity(image="ghcr.io/someone/minimaldask/debian-dataframe@sha256:" + "0" * 64) == arch_affinity(
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}
    )
    assert affinity(image="registry.example/minimaldask/debian-dataframe-custom:1") is None  # not one of ours
    assert affinity(image="docker.io/someone/custom:1") is None
    assert affinity(image="docker.io/someone/custom:1", image_platforms=["linux/arm/v7"]) == arch_affinity(
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm"]}
    )
    assert affinity(image_platforms=[]) is None  # turned off


@pytest.mark.parametrize("spec", CLUSTERS.values(), ids=CLUSTERS.keys())
def test_workers_use_the_service_dns_name(spec: ClusterSpec) -> None:
    worker = by_kind(render.render_cluster(spec), "Deployment", "demo-worker")
    address = env_of(pod_spec(worker)["containers"][0])["DASK_SCHEDULER_ADDRESS"]
    assert address == scheduler_address(spec.name, spec.namespace, spec.tls)
    assert address.split("://")[1] == "demo-scheduler.dask.svc:8786"


def test_tls() -> None:
    objects = render.render_cluster(ROOT_TLS)
    for deployment in deployments(objects):
        spec = pod_spec(deployment)
        assert spec["volumes"] == [{"name": "tls", "secret": {"secretName": "dask-tls", "defaultMode": 0o440}}]
        (container,) = spec["containers"]
        assert container["volumeMounts"] == [{"name": "tls", "mountPath": "/etc/dask/tls", "readOnly": True}]
        env = env_of(container)
        assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "true"
        for key in ("CA_FILE", "SCHEDULER__CERT", "SCHEDULER__KEY", "WORKER__CERT", "WORKER__KEY"):
            assert env[f"DASK_DISTRIBUTED__COMM__TLS__{key}"].startswith("/etc/dask/tls/")
    worker = by_kind(objects, "Deployment", "demo-worker")
    assert env_of(pod_spec(worker)["containers"][0])["DASK_SCHEDULER_ADDRESS"].startswith("tls://")


# --- the network policy ---


def selects(selector: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    """A selector of matchLabels only (all the policy uses) against a pod's labels."""
    assert set(selector) == {"matchLabels"}, selector
    return bool(selector["matchLabels"].items() <= pod_labels.items())


def pods_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The labels of each workload's pods, by the workload's name."""
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    return {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"] for o in workloads}


def test_the_network_policy_lets_in_only_the_clusters_own_pods_and_its_labelled_clients() -> None:
    objects = render.render_job(JobSpec(cluster=GROUPS, command=COMMAND))  # a runner, a scheduler, two groups
    policy = by_kind(objects, "NetworkPolicy")
    assert policy["metadata"]["name"] == "demo-dask"
    assert policy["metadata"]["labels"] == labels.cluster_labels("demo")  # found and deleted with the cluster
    spec = policy["spec"]
    # Egress is not restricted: the controller in the scheduler calls the API server.
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
    pods = pods_of(objects)
    assert {name: selects(spec["podSelector"], pod) for name, pod in pods.items()} == dict.fromkeys(
        ["demo-runner", "demo-scheduler", "demo-worker", "demo-worker-gpu"], True
    )
    (rule,) = spec["ingress"]
    assert "ports" not in rule  # every port: a worker's comm port is random
    # Pod selectors alone, no namespaceSelector: pods of the policy's own namespace only.
    assert rule["from"] == [
        {"podSelector": {"matchLabels": {labels.LABEL_CLUSTER: "demo"}}},
        {"podSelector": {"matchLabels": {labels.LABEL_CLIENT_OF: "demo"}}},
    ]

    def admitted(pod: dict[str, str]) -> bool:
        return any(selects(peer["podSelector"], pod) for peer in rule["from"])

    assert all(admitted(pod) for pod in pods.values())
    assert admitted({"app": "notebook", "minimaldask/client-of": "demo"})
    assert not admitted({"app": "notebook", "minimaldask/client-of": "other"})
    assert not admitted({"app": "notebook"})
    assert not [name for name, pod in pods_of(render.render_cluster(cluster(name="other"))).items() if admitted(pod)]


@pytest.mark.parametrize("spec", [FULL, ROOT_TLS], ids=["NodePort", "LoadBalancer"])
def test_an_exposed_scheduler_is_let_in_from_anywhere_on_its_two_ports(spec: ClusterSpec) -> None:
    objects = render.render_cluster(spec)
    inside, outside = by_kind(objects, "NetworkPolicy")["spec"]["ingress"]
    assert inside == by_kind(render.render_cluster(cluster()), "NetworkPolicy")["spec"]["ingress"][0]
    assert "from" not in outside  # any source: through nodes and load balancers no selector names
    assert outside["ports"] == [{"port": 8786, "protocol": "TCP"}, {"port": 8787, "protocol": "TCP"}]
    ports = {
        name: {p["containerPort"] for p in containers(by_kind(objects, "Deployment", name))[0]["ports"]}
        for name in ("demo-scheduler", "demo-worker")
    }
    opened = {port["port"] for port in outside["ports"]}
    assert opened == ports["demo-scheduler"] and not opened & ports["demo-worker"]


def test_network_policy_false_renders_no_policy_and_nothing_else_changes() -> None:
    def kinds_and_names(spec: ClusterSpec) -> list[tuple[str, str]]:
        return [(o["kind"], o["metadata"]["name"]) for o in render.render_cluster(spec)]

    assert kinds_and_names(cluster(network_policy=False)) == kinds_and_names(cluster())[1:]
    exposed = render.render_cluster(cluster(network_policy=False, service_type="LoadBalancer"))
    assert "NetworkPolicy" not in [o["kind"] for o in exposed]


# --- pod security ---


@pytest.mark.parametrize(
    "obj",
    [o for o in OBJECTS.values() if o["kind"] in ("Deployment", "DaemonSet", "Job")],
    ids=[k for k, o in OBJECTS.items() if o["kind"] in ("Deployment", "DaemonSet", "Job")],
)
def test_pods_are_locked_down(obj: dict[str, Any]) -> None:
    spec = pod_spec(obj)
    # Only the scheduler calls the API (its controller), as its own ServiceAccount.
    assert spec["automountServiceAccountToken"] is (obj["metadata"]["name"] == "demo-scheduler")
    assert spec["enableServiceLinks"] is False
    context = spec["securityContext"]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    root = obj["metadata"]["name"] != "demo-prepuller" and "EXTRA_APT_PACKAGES" in env_of(spec["containers"][0])
    ids = {key: context.get(key) for key in ("runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup")}
    if root:
        assert ids == {"runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0, "fsGroup": 1000}
    elif obj in platform_uid_objects():
        assert ids == {"runAsNonRoot": True, "runAsUser": None, "runAsGroup": None, "fsGroup": None}
    else:
        assert ids == {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}
    for container in containers(obj):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        assert set(security["capabilities"].get("add", [])) <= (set(contract.ROOT_CAPABILITIES) if root else set())


def platform_uid_objects() -> list[dict[str, Any]]:
    return [
        *render.render_cluster(PLATFORM_UID),
        *render.render_prepuller(PREPULLERS["platform-uid"]),
        *render.render_job(JOBS["full"]),
    ]


def test_platform_uid_leaves_the_ids_to_the_platform() -> None:
    for obj in platform_uid_objects():
        if obj["kind"] not in ("Deployment", "DaemonSet"):
            continue
        context = pod_spec(obj)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(context), obj["metadata"]["name"]
    # The TLS key must be readable by the UID the platform assigns, which may come without an fsGroup.
    for deployment in deployments(render.render_cluster(PLATFORM_UID)):
        (volume,) = pod_spec(deployment)["volumes"]
        assert volume["secret"]["defaultMode"] == 0o444
    for deployment in deployments(render.render_cluster(ROOT_TLS)):
        (volume,) = pod_spec(deployment)["volumes"]
        assert volume["secret"]["defaultMode"] == 0o440


def test_system_packages_run_as_root_explicitly() -> None:
    for deployment in deployments(render.render_cluster(ROOT_TLS)):
        spec = pod_spec(deployment)
        assert spec["securityContext"]["runAsUser"] == 0
        assert spec["securityContext"]["runAsNonRoot"] is False
        (container,) = spec["containers"]
        assert container["securityContext"]["capabilities"]["add"] == list(contract.ROOT_CAPABILITIES)
        assert env_of(container)["EXTRA_APT_PACKAGES"] == "curl"


# --- the prepuller ---


def test_prepuller_daemonset() -> None:
    spec = PREPULLERS["full"]
    (daemonset,) = render.render_prepuller(spec)
    assert daemonset["kind"] == "DaemonSet"
    assert daemonset["metadata"]["name"] == "demo-prepuller"
    assert daemonset["spec"]["selector"]["matchLabels"] == labels.selector_labels("demo", "prepuller")
    assert daemonset["spec"]["template"]["metadata"]["labels"] == labels.component_labels("demo", "prepuller")
    assert daemonset["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}}
    pod = pod_spec(daemonset)
    init = pod["initContainers"]
    assert [c["image"] for c in init] == sorted(set(spec.images))
    assert len({c["name"] for c in init}) == len(init)
    for container in init:
        assert container["command"] == ["/bin/sh", "-c", "echo Pulling complete"]
    (pause,) = pod["containers"]
    assert pause["image"] == "registry.example:5000/pause:3.10"
    assert pause["resources"] == render.PREPULL_RESOURCES
    assert pod["terminationGracePeriodSeconds"] == 0
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["nodeSelector"] == {"dask.org/node": "true"}
    # Both images are minimaldask's (debian, alpine): all three architectures, ANDed into the term.
    assert pod["affinity"] == placement.with_arch(AFFINITY, ["linux/amd64", "linux/arm64", "linux/arm/v7"])
    assert pod["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"][0]["matchExpressions"][1] == ALL_ARCHES
    assert pod["priorityClassName"] == "dask-low"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_prepuller_defaults() -> None:
    (daemonset,) = render.render_prepuller(prepull())
    pod = pod_spec(daemonset)
    assert [c["image"] for c in pod["initContainers"]] == [IMAGE]
    assert pod["containers"][0]["image"] == "registry.k8s.io/pause:3.10"
    assert not {"tolerations", "nodeSelector", "priorityClassName", "imagePullSecrets"} & set(pod)
    assert pod["affinity"] == arch_affinity(ALL_ARCHES)
    (other,) = render.render_prepuller(prepull(images=["registry.example:5000/someone/else:1"]))
    assert "affinity" not in pod_spec(other)  # an image not defined here: no constraint


def checksum_of(images: list[str]) -> str:
    (daemonset,) = render.render_prepuller(prepull(images=images))
    return daemonset["spec"]["template"]["metadata"]["annotations"]["minimaldask/images-checksum"]


def test_prepuller_checksum_changes_iff_image_set_changes() -> None:
    base = checksum_of(["a:1", "b:1"])
    assert base == render.images_checksum(["a:1", "b:1"])
    assert checksum_of(["b:1", "a:1"]) == base
    assert checksum_of(["b:1", "a:1", "b:1"]) == base
    assert render.render_prepuller(prepull(images=["b:1", "a:1"])) == render.render_prepuller(
        prepull(images=["a:1", "b:1", "a:1"])
    )
    assert checksum_of(["a:1", "b:2"]) != base
    assert checksum_of(["a:1"]) != base
    assert checksum_of(["a:1", "b:1", "c:1"]) != base


def test_images_checksum() -> None:
    checksum = render.images_checksum(["a:1", "b:1"])
    assert len(checksum) == 64
    assert render.images_checksum(["b:1", "a:1", "a:1"]) == checksum
    assert render.images_checksum(["a:1", "b:2"]) != checksum
    assert render.images_checksum(["a:1"]) != checksum


# --- RBAC ---

DEPLOYER_RULES = [
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "daemonsets"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {
        "apiGroups": [""],
        "resources": ["services", "serviceaccounts"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "create", "patch", "delete"]},
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["get", "list", "create", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["get", "create"]},
]


def test_rbac() -> None:
    objects = render.render_rbac("dask")
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Role", "RoleBinding"]
    assert {o["metadata"]["name"] for o in objects} == {"minimaldask-deployer"}
    role = by_kind(objects, "Role")
    assert role["rules"] == DEPLOYER_RULES
    binding = by_kind(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "minimaldask-deployer",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "minimaldask-deployer", "namespace": "dask"}]
    assert all(verb != "*" and verb != "update" for rule in role["rules"] for verb in rule["verbs"])


def test_no_rendered_object_holds_key_material_or_is_a_secret() -> None:
    """A TLS cluster's objects name its Secret; the key and certificate exist only in the Secret
    the start makes (credentials.py), never in `render` output."""
    text = json.dumps(list(OBJECTS.values()))
    assert not [name for name, obj in OBJECTS.items() if obj["kind"] == "Secret"]
    assert "PRIVATE KEY" not in text and "CERTIFICATE" not in text
    assert '"secretName": "demo-tls"' in text and '"secretName": "dask-tls"' in text


def test_rbac_checks_its_arguments() -> None:
    with pytest.raises(ConfigError, match="namespace must be"):
        render.render_rbac("Dask")


# --- YAML: lint-clean, deterministic, strict ---


def lint(text: str) -> list[str]:
    return [f"{p.line}:{p.column} {p.rule}: {p.message}" for p in linter.run(text, YAMLLINT)]


@pytest.mark.parametrize(
    ("template", "context"),
    [
        *[(t, render.cluster_context(spec)) for spec in CLUSTERS.values() for t in render.CLUSTER_TEMPLATES],
        *[("worker-deployment.yaml.j2", render.worker_context(spec, None)) for spec in CLUSTERS.values()],
        *[("prepuller-daemonset.yaml.j2", render.prepuller_context(s)) for s in PREPULLERS.values()],
        *[("runner-job.yaml.j2", render.runner_context(job)) for job in JOBS.values()],
        ("rbac.yaml.j2", render.rbac_context("dask")),
    ],
)
def test_templates_render_lint_clean_yaml(template: str, context: dict[str, Any]) -> None:
    text = render.render_template(template, **context)
    assert lint(text) == []


def test_to_yaml_is_lint_clean_and_round_trips() -> None:
    objects = list(OBJECTS.values())
    text = render.to_yaml(objects)
    assert text.startswith("---\n")
    assert lint(text) == []
    assert list(yaml.safe_load_all(text)) == objects


def test_rendering_is_deterministic() -> None:
    assert render.to_yaml(render.render_cluster(FULL)) == render.to_yaml(render.render_cluster(FULL))
    reordered = cluster(
        **{
            field: (dict(reversed(value.items())) if isinstance(value, dict) else value)
            for field, value in FULL.model_dump().items()
            if field not in ("namespace", "image")
        }
    )
    assert render.to_yaml(render.render_cluster(reordered)) == render.to_yaml(render.render_cluster(FULL))


@pytest.mark.parametrize(
    "value",
    ['"quoted"', "a: b", "- item", "yes", "on", "0o17", "1e3", "", "#x", "{{ x }}", "tab\tnl\n", "é😀", "\x85\x7f"],
)
def test_values_are_yaml_safe(value: str) -> None:
    spec = cluster(env={"VALUE": value}, labels={"team": "a-b.c_d"})
    for deployment in deployments(render.render_cluster(spec)):
        assert env_of(pod_spec(deployment)["containers"][0])["VALUE"] == value


def test_missing_variable_fails() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render.render_template("scheduler-service.yaml.j2")
    context = render.worker_context(cluster(), None)
    del context["worker"]
    with pytest.raises(jinja2.UndefinedError):
        render.render_template("worker-deployment.yaml.j2", **context)
    with pytest.raises(jinja2.UndefinedError):
        render.render_template("rbac.yaml.j2", namespace="dask", name="x")


def test_templates_are_found() -> None:
    names = {path.name for path in render.MANIFESTS_DIR.iterdir()}
    assert {
        "_helpers.j2",
        "scheduler-deployment.yaml.j2",
        "scheduler-service.yaml.j2",
        "worker-deployment.yaml.j2",
        "prepuller-daemonset.yaml.j2",
        "rbac.yaml.j2",
    } <= names


# --- one schema: the CLI's spec file and the API give the same manifests ---

SPEC_FILE = f"""\
name: demo
namespace: dask
image: {IMAGE}
n_workers: 3
resources:
  scheduler: {{requests: {{cpu: 250m, memory: 512Mi}}, limits: {{memory: 1Gi}}}}
  worker: {{requests: {{cpu: 1, memory: 2Gi}}, limits: {{cpu: 1500m, memory: 2Gi}}}}
env: {{GREETING: "hello: world"}}
pip_packages: ["dask[array]", "pandas>=2"]
scheduler_args: [--idle-timeout, 1h]
service_type: NodePort
tls_secret: dask-tls
image_pull_secrets: [regcred]
node_selector: {{kubernetes.io/os: linux}}
tolerations:
  - {{key: dedicated, operator: Equal, value: dask, effect: NoSchedule}}
worker_grace_seconds: 120
labels: {{team: data}}
"""


def render_cli(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "buildtools", "render", "cluster", *argv], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_spec_file_through_the_cli_is_the_spec_through_the_api(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(SPEC_FILE)
    # What start_dask_cluster(**yaml.safe_load(...)) deploys.
    api = render.render_cluster(ClusterSpec(**yaml.safe_load(SPEC_FILE)))
    assert list(yaml.safe_load_all(render_cli("--spec", str(path)))) == api
    assert render_cli("--spec", str(path)) == render.to_yaml(api)
    assert by_kind(api, "Deployment", "demo-worker")["spec"]["replicas"] == 3


def test_the_cli_options_override_the_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(SPEC_FILE)
    text = render_cli("other", "--spec", str(path), "-n", "data", "--workers", "5", "--service-type", "ClusterIP")
    overridden = {**yaml.safe_load(SPEC_FILE), "name": "other", "namespace": "data", "n_workers": 5}
    overridden["service_type"] = "ClusterIP"
    assert text == render.to_yaml(render.render_cluster(ClusterSpec(**overridden)))


PLANNED = cluster(
    image_pull_secrets=["regcred"],
    placement={"worker": {"node_selector": {"pool": "compute"}}},
)
CLUSTER_KINDS = ["NetworkPolicy", "ServiceAccount", "Role", "RoleBinding", "Service", "Deployment", "Deployment"]


def test_the_planned_objects_are_the_cluster_after_its_prepuller_on_the_workers_nodes() -> None:
    assert [o["kind"] for o in render.planned_objects(PLANNED, prepull=False)] == CLUSTER_KINDS
    objects = render.planned_objects(PLANNED, prepull=True)
    assert [o["kind"] for o in objects] == ["DaemonSet", *CLUSTER_KINDS]
    assert objects[1:] == render.render_cluster(PLANNED)
    prepuller, worker = pod_spec(objects[0]), pod_spec(objects[-1])
    assert objects[0]["metadata"]["name"] == "demo-prepuller"
    assert prepuller["nodeSelector"] == worker["nodeSelector"] == {"pool": "compute"}
    assert prepuller["affinity"] == worker["affinity"]
    assert prepuller["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize("platform_uid", [False, True])
def test_the_planned_prepuller_has_the_clusters_identity_rules(platform_uid: bool) -> None:
    """The defect of issue 18: the dry run's prepuller had runAsUser 1000 where the applied one had none."""
    spec = cluster(platform_uid=platform_uid)
    (prepuller, *_), worker = render.planned_objects(spec, prepull=True), deployments(render.render_cluster(spec))[1]
    assert pod_spec(prepuller)["securityContext"] == pod_spec(worker)["securityContext"]
    assert ("runAsUser" in pod_spec(prepuller)["securityContext"]) is not platform_uid


def test_the_scheduler_alone_has_an_identity_limited_to_its_own_cluster() -> None:
    objects = render.render_cluster(cluster(name="alpha"))
    scheduler, worker = deployments(objects)
    assert pod_spec(scheduler)["serviceAccountName"] == "alpha-scheduler"
    assert pod_spec(scheduler)["automountServiceAccountToken"] is True
    assert "serviceAccountName" not in pod_spec(worker)
    assert pod_spec(worker)["automountServiceAccountToken"] is False
    role = by_kind(objects, "Role")
    writes = [rule for rule in role["rules"] if set(rule["verbs"]) & {"patch", "delete"}]
    # Every write is limited to this cluster's names, but for the pods' deletion cost (random names).
    assert {r["resources"][0] for r in writes if "resourceNames" not in r} == {"pods"}
    names = {n for r in writes for n in r.get("resourceNames", [])}
    assert names == {"alpha-scheduler", "alpha-worker", "alpha-dask", "alpha-tls"}
    binding = by_kind(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == "alpha-scheduler"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "alpha-scheduler", "namespace": "dask"}]
    env = {e["name"]: e["value"] for e in pod_spec(scheduler)["containers"][0]["env"]}
    assert env["MINIMALDASK_CLUSTER"] == "alpha" and env["MINIMALDASK_NAMESPACE"] == "dask"


def test_the_policies_are_annotations_of_the_deployments_not_of_their_pods() -> None:
    scheduler, worker = deployments(render.render_cluster(cluster(adapt={"minimum": 0, "maximum": 5}, idle_timeout=90)))
    assert worker["metadata"]["annotations"] == {"minimaldask/adapt": '{"maximum": 5, "minimum": 0}'}
    assert scheduler["metadata"]["annotations"]["minimaldask/idle-timeout"] == "90"
    assert "annotations" not in worker["spec"]["template"]["metadata"]
    assert "annotations" not in scheduler["spec"]["template"]["metadata"]
    plain_scheduler, plain_worker = deployments(render.render_cluster(cluster()))
    assert "annotations" not in plain_worker["metadata"]
    assert set(plain_scheduler["metadata"]["annotations"]) == {labels.SPEC_ANNOTATION}


def test_each_worker_group_is_its_own_deployment_with_its_own_fields() -> None:
    objects = render.render_cluster(GROUPS)
    default, gpu = (by_kind(objects, "Deployment", name) for name in ("demo-worker", "demo-worker-gpu"))
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"] == [
        "demo-scheduler",
        "demo-worker",
        "demo-worker-gpu",
    ]
    # The default group's selector is today's; a group's adds its label, which its pods carry.
    assert default["spec"]["selector"]["matchLabels"] == labels.selector_labels("demo", "worker")
    assert gpu["spec"]["selector"]["matchLabels"] == {
        **labels.selector_labels("demo", "worker"),
        labels.LABEL_GROUP: "gpu",
    }
    assert gpu["spec"]["template"]["metadata"]["labels"][labels.LABEL_GROUP] == "gpu"
    assert labels.LABEL_GROUP not in default["spec"]["template"]["metadata"]["labels"]
    assert (default["spec"]["replicas"], gpu["spec"]["replicas"]) == (1, 0)
    container = containers(gpu)[0]
    assert container["image"] == "registry.example:5000/minimaldask/debian-dataframe:2026.8.0-py3.13"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    env = env_of(container)
    assert (env["GPU_WORKER"], env["A"], env["B"]) == ("true", "1", "2")  # the cluster's env, then the group's
    assert env["ARGUMENTS"] == "--nworkers 1 --resources GPU=1,VRAM=1.6e+10"
    assert GPU_TOLERATION in pod_spec(gpu)["tolerations"] and pod_spec(gpu)["nodeSelector"] == {"pool": "gpu"}
    assert "GPU_WORKER" not in env_of(containers(default)[0]) and "nodeSelector" not in pod_spec(default)
    annotations = gpu["metadata"]["annotations"]
    assert annotations[controller.ADAPT_ANNOTATION] == '{"maximum": 4, "minimum": 0}'
    assert json.loads(annotations[controller.DASK_RESOURCES_ANNOTATION]) == {"GPU": 1, "VRAM": 16e9}
    assert controller.DASK_RESOURCES_ANNOTATION not in default["metadata"]["annotations"]
    # The handle lists a group's pods without reading its Deployment: by the same selector.
    for name, group in (("demo-worker", None), ("demo-worker-gpu", "gpu")):
        rendered = by_kind(objects, "Deployment", name)["spec"]["selector"]["matchLabels"]
        assert labels.worker_pod_selector("demo", group) == controller.pod_selector(rendered)
    assert labels.worker_pod_selector("demo").endswith(f",!{labels.LABEL_GROUP}")
    role = by_kind(objects, "Role")
    assert ["demo-scheduler", "demo-worker", "demo-worker-gpu"] in [r.get("resourceNames") for r in role["rules"]]


def test_the_stored_spec_has_no_worker_counts() -> None:
    stored = json.loads(render.spec_annotation(GROUPS))
    assert "n_workers" not in stored and "n_workers" not in stored["worker_groups"]["gpu"]
    assert stored["worker_groups"]["gpu"]["dask_resources"] == {"GPU": 1, "VRAM": 16e9}


# --- batch jobs ---


def test_a_job_is_its_runner_job_then_its_cluster_which_follows_the_job() -> None:
    objects = render.render_job(JOBS["minimal"])
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Job", "demo-runner"),
        *[(o["kind"], o["metadata"]["name"]) for o in render.render_cluster(cluster())],
    ]
    runner = objects[0]
    assert runner["metadata"]["labels"][labels.LABEL_CLUSTER] == "demo"  # delete_dask_cluster finds it
    assert runner["spec"]["template"]["metadata"]["labels"][labels.LABEL_COMPONENT] == "runner"
    assert (runner["spec"]["backoffLimit"], runner["spec"]["ttlSecondsAfterFinished"]) == (0, 300)
    assert "activeDeadlineSeconds" not in runner["spec"]
    pod = pod_spec(runner)
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert "command" not in container  # the image's entrypoint runs the args (installs, the wait)
    assert container["args"] == COMMAND and container["image"] == IMAGE
    env = env_of(container)
    assert env["DASK_SCHEDULER_ADDRESS"] == scheduler_address("demo", "dask", True)  # TLS by default
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"] == f"{contract.TLS_MOUNT_PATH}/tls.crt"
    scheduler, _ = deployments(objects)
    assert scheduler["metadata"]["annotations"][controller.JOB_ANNOTATION] == "demo-runner"
    role = by_kind(objects, "Role")
    assert {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"], "resourceNames": ["demo-runner"]} in (
        role["rules"]
    )
    # A plain cluster has neither: its scheduler reads no Job.
    plain = render.render_cluster(cluster())
    assert controller.JOB_ANNOTATION not in deployments(plain)[0]["metadata"]["annotations"]
    assert not [r for r in by_kind(plain, "Role")["rules"] if r["resources"] == ["jobs"]]


def test_a_jobs_options_reach_its_runner() -> None:
    runner, *_ = render.render_job(JOBS["full"])
    assert runner["spec"]["backoffLimit"] == 2
    assert runner["spec"]["activeDeadlineSeconds"] == 600
    assert runner["spec"]["ttlSecondsAfterFinished"] == 30
    (container,) = pod_spec(runner)["containers"]
    assert container["image"] == "registry.example:5000/other:1"
    assert container["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}
    env = env_of(container)
    assert env["RUN"] == "1" and env["EXTRA_PIP_PACKAGES"] == "toolz"
    # A TLS cluster's runner is a client with the cluster's certificate.
    assert env["DASK_SCHEDULER_ADDRESS"].startswith("tls://")
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"] == f"{contract.TLS_MOUNT_PATH}/tls.crt"
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"] == f"{contract.TLS_MOUNT_PATH}/tls.key"
    assert not [name for name in env if "__SCHEDULER__" in name or "__WORKER__" in name]
    assert pod_spec(runner)["volumes"][0]["secret"]["secretName"] == "dask-tls"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"command": []}, "command must be a non-empty list"),
        ({"command": "python job.py"}, "command must be a non-empty list"),
        ({"command": [""]}, "command"),
        ({"backoff_limit": -1}, "backoff_limit must be an integer >= 0"),
        ({"active_deadline_seconds": 0}, "active_deadline_seconds must be a number of seconds > 0"),
        (
            {"env": {"DASK_SCHEDULER_ADDRESS": "tcp://elsewhere:8786"}},
            "env: DASK_SCHEDULER_ADDRESS is set by minimaldask",
        ),
        ({"retries": 3}, "unknown key 'retries'"),
    ],
)
def test_a_bad_job_field_fails_with_one_line_naming_it(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        JobSpec(**{"cluster": cluster(), "command": COMMAND, **fields})
    assert "\n" not in str(raised.value)
