"""Cluster and prepuller specs: validation, names, labels, addresses and env (pure, no cluster needed)."""

import dataclasses
from importlib import metadata
from typing import Any

import pytest

from buildtools.cluster import specs
from buildtools.cluster.specs import ClusterResources, ClusterSpec, PrepullSpec, Resources
from buildtools.errors import ConfigError

IMAGE = "registry.example:5000/minimaldask/debian:2026.8.0"


def cluster(**overrides: Any) -> ClusterSpec:
    return ClusterSpec(**{"name": "demo", "namespace": "dask", "image": IMAGE, **overrides})


def assert_config_error(build: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        build()
    message = str(info.value)
    assert message and "\n" not in message, message


# --- defaults and the image ---


def test_defaults() -> None:
    spec = ClusterSpec(name="demo")
    assert spec.namespace == "default"
    assert spec.n_workers == 1
    assert spec.service_type == "ClusterIP"
    assert spec.tls_secret is None
    assert spec.worker_grace_seconds == 60
    assert spec.resources == ClusterResources()
    assert not spec.run_as_root
    assert spec.image == specs.default_image()


def test_default_image_matches_installed_distributed() -> None:
    version = metadata.version("distributed")
    assert specs.DEFAULT_REGISTRY == "ghcr.io/minimaldask"
    assert specs.default_image() == f"ghcr.io/minimaldask/minimaldask/debian:{version}"
    assert specs.default_image(registry="127.0.0.1:5000/") == f"127.0.0.1:5000/minimaldask/debian:{version}"


def test_spec_is_frozen_and_normalised() -> None:
    spec = cluster(pip_packages=["pandas"], scheduler_args=["--idle-timeout", "1h"], image_pull_secrets=["regcred"])
    assert spec.pip_packages == ("pandas",)
    assert spec.scheduler_args == ("--idle-timeout", "1h")
    assert spec.image_pull_secrets == ("regcred",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.n_workers = 2  # type: ignore[misc]


def test_resources_from_mapping_or_dataclass() -> None:
    as_mapping = cluster(resources={"worker": {"requests": {"cpu": 1}, "limits": {"cpu": "2", "memory": "4Gi"}}})
    as_dataclass = cluster(
        resources=ClusterResources(worker=Resources(requests={"cpu": "1"}, limits={"cpu": "2", "memory": "4Gi"}))
    )
    assert as_mapping.resources == as_dataclass.resources
    assert as_mapping.resources.worker.requests == {"cpu": "1"}  # numbers become quantities (strings)
    assert as_mapping.resources.scheduler == Resources()


def test_extended_and_fractional_resources() -> None:
    spec = cluster(resources={"worker": {"limits": {"nvidia.com/gpu": "1", "cpu": 0.5, "ephemeral-storage": "1e9"}}})
    assert spec.resources.worker.limits == {"nvidia.com/gpu": "1", "cpu": "0.5", "ephemeral-storage": "1e9"}


# --- validation: each error is one ConfigError line, raised when the spec is built ---


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"name": "Demo"}, "name must be"),
        ({"name": "-demo"}, "name must be"),
        ({"name": "demo-"}, "name must be"),
        ({"name": "1demo"}, "name must be"),  # a Service name starts with a letter
        ({"name": "de_mo"}, "name must be"),
        ({"name": ""}, "name must be"),
        ({"name": "a" * (specs.NAME_MAX_LENGTH + 1)}, "at most 53 characters"),
        ({"namespace": "Dask"}, "namespace must be"),
        ({"namespace": "a" * 64}, "namespace must be"),
        ({"n_workers": -1}, "n_workers must be an integer >= 0"),
        ({"n_workers": 1.5}, "n_workers must be an integer"),
        ({"n_workers": "3"}, "n_workers must be an integer"),
        ({"n_workers": True}, "n_workers must be an integer"),
        ({"service_type": "clusterip"}, "service_type must be one of ClusterIP, NodePort, LoadBalancer"),
        ({"service_type": "ExternalName"}, "service_type must be one of"),
        ({"image": ""}, "image must be a non-empty"),
        ({"image": "debian: latest"}, "image must be"),
        ({"resources": {"worker": {"limits": {"memory": "lots"}}}}, r"resources\.worker\.limits\.memory: 'lots'"),
        ({"resources": {"worker": {"limits": {"memory": "1 Gi"}}}}, "is not a Kubernetes quantity"),
        ({"resources": {"scheduler": {"requests": {"cpu": "-1"}}}}, "is not a Kubernetes quantity"),
        ({"resources": {"scheduler": {"requests": {"cpu": True}}}}, "is not a Kubernetes quantity"),
        ({"resources": {"worker": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}}, "exceeds its limit"),
        ({"resources": {"worker": {"limit": {}}}}, "unknown key 'limit'"),
        ({"resources": {"workers": {}}}, "unknown key 'workers'"),
        ({"resources": {"worker": {"limits": {"gpu": "1"}}}}, "unknown resource 'gpu'"),
        ({"env": {"1X": "v"}}, "env: '1X' is not a valid variable name"),
        ({"env": {"A-B": "v"}}, "is not a valid variable name"),
        ({"env": {"A=B": "v"}}, "is not a valid variable name"),
        ({"env": {"": "v"}}, "is not a valid variable name"),
        ({"env": {"OK": 1}}, "the value of OK must be a string"),
        ({"env": {"WORKER": "true"}}, "WORKER is set by minimaldask"),
        ({"env": {"DASK_SCHEDULER_ADDRESS": "tcp://x:8786"}}, "DASK_SCHEDULER_ADDRESS is set by minimaldask"),
        ({"env": {"EXTRA_PIP_PACKAGES": "x"}}, "EXTRA_PIP_PACKAGES is set by minimaldask"),
        (
            {"tls_secret": "tls", "env": {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "false"}},
            "REQUIRE_ENCRYPTION is set by minimaldask",
        ),
        ({"env": ["A=B"]}, "env must be a mapping"),
        ({"pip_packages": "pandas"}, "pip_packages must be a list"),
        ({"pip_packages": ["--index-url=http://evil"]}, "looks like an option"),
        ({"system_packages": ["curl wget"]}, "without whitespace"),
        ({"system_package_manager": "yum"}, "system_package_manager must be auto, apt or apk"),
        ({"worker_args": ["--name", "my worker"]}, "worker_args: 'my worker'"),
        ({"scheduler_args": [""]}, "scheduler_args: '' must be a non-empty string"),
        ({"tls_secret": "Dask_TLS"}, "tls_secret must be a DNS-1123 subdomain"),
        ({"image_pull_secrets": "regcred"}, "image_pull_secrets must be a list"),
        ({"image_pull_secrets": ["Reg Cred"]}, "image_pull_secrets must be a DNS-1123 subdomain"),
        ({"node_selector": {"bad key!": "x"}}, "node_selector: 'bad key!' is not a valid label key"),
        ({"node_selector": {"disk": "fast ssd"}}, "not a valid label value"),
        ({"tolerations": {"key": "x"}}, "tolerations must be a list"),
        ({"tolerations": [{"key": "x", "operator": "In"}]}, "operator must be Exists or Equal"),
        ({"tolerations": [{"key": "x", "operator": "Exists", "value": "y"}]}, "takes no value"),
        ({"tolerations": [{"key": "x", "effect": "NoRun"}]}, "effect must be one of"),
        ({"tolerations": [{"key": "x", "tolerationsSeconds": 1}]}, "unknown key 'tolerationsSeconds'"),
        ({"worker_grace_seconds": -1}, "worker_grace_seconds must be an integer >= 0"),
        ({"labels": {"dask.org/component": "x"}}, "labels must not set dask.org/component"),
        ({"labels": {"team": "x" * 64}}, "not a valid label value"),
    ],
)
def test_invalid_cluster_spec(overrides: dict[str, Any], match: str) -> None:
    assert_config_error(lambda: cluster(**overrides), match)


def test_name_length_leaves_room_for_the_suffixes() -> None:
    name = "a" * specs.NAME_MAX_LENGTH
    spec = cluster(name=name)
    for component in specs.COMPONENTS:
        assert len(specs.component_name(spec.name, component)) <= 63


def test_unknown_component() -> None:
    assert_config_error(lambda: specs.component_labels("demo", "nanny"), "component must be one of")
    assert_config_error(lambda: specs.dask_env(cluster(), "prepuller"), "component must be scheduler or worker")


# --- names, labels, addresses ---


def test_labels() -> None:
    assert specs.cluster_labels("demo") == {
        "app.kubernetes.io/name": "dask",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/managed-by": "minimaldask",
        "dask.org/cluster-name": "demo",
    }
    for component in specs.COMPONENTS:
        labels = specs.component_labels("demo", component)
        assert labels == {**specs.cluster_labels("demo"), "dask.org/component": component}
        selector = specs.selector_labels("demo", component)
        assert selector.items() <= labels.items()


def test_label_selector() -> None:
    assert specs.label_selector("demo") == "dask.org/cluster-name=demo"
    assert specs.label_selector("demo", "worker") == "dask.org/cluster-name=demo,dask.org/component=worker"


def test_scheduler_service_and_address() -> None:
    assert specs.scheduler_service_name("demo") == "demo-scheduler"
    assert specs.scheduler_address(cluster()) == "tcp://demo-scheduler.dask.svc:8786"
    assert specs.scheduler_address(cluster(tls_secret="dask-tls")) == "tls://demo-scheduler.dask.svc:8786"


# --- the containers' environment ---


def test_scheduler_env() -> None:
    env = specs.dask_env(cluster(scheduler_args=["--idle-timeout", "1h"], env={"B": "2", "A": "1"}), "scheduler")
    assert env == {
        "WORKER": "false",
        "PORT": "8786",
        "DASHBOARD_PORT": "8787",
        "ARGUMENTS": "--idle-timeout 1h",
        "A": "1",
        "B": "2",
    }


@pytest.mark.parametrize(
    ("limits", "nthreads", "memory"),
    [
        ({"cpu": "1500m", "memory": "2Gi"}, "2", str(2 * 1024**3)),
        ({"cpu": "250m", "memory": "1G"}, "1", "1000000000"),
        ({"cpu": "4"}, "4", None),
        ({}, None, None),
    ],
)
def test_worker_env_from_limits(limits: dict[str, str], nthreads: str | None, memory: str | None) -> None:
    env = specs.dask_env(cluster(resources={"worker": {"limits": limits}}), "worker")
    assert env["WORKER"] == "true"
    assert env["DASHBOARD_PORT"] == "8788"
    assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://demo-scheduler.dask.svc:8786"
    assert env.get("WORKER_NTHREADS") == nthreads
    assert env.get("WORKER_MEMORY_LIMIT") == memory


def test_worker_env_can_override_derived_values() -> None:
    spec = cluster(resources={"worker": {"limits": {"cpu": "4"}}}, env={"WORKER_NTHREADS": "1"})
    assert specs.dask_env(spec, "worker")["WORKER_NTHREADS"] == "1"
    assert specs.dask_env(spec, "scheduler")["WORKER_NTHREADS"] == "1"  # env goes to every Dask container


@pytest.mark.parametrize(
    ("image", "manager", "variable"),
    [
        (IMAGE, "auto", "EXTRA_APT_PACKAGES"),
        ("127.0.0.1:5000/minimaldask/alpine:2026.8.0", "auto", "EXTRA_APK_PACKAGES"),
        ("127.0.0.1:5000/minimaldask/rapids:2026.8.0", "auto", "EXTRA_APT_PACKAGES"),
        ("example.org/custom:1", "apk", "EXTRA_APK_PACKAGES"),
    ],
)
def test_system_packages_run_as_root(image: str, manager: str, variable: str) -> None:
    spec = cluster(image=image, system_packages=["curl", "git"], system_package_manager=manager)
    assert spec.run_as_root
    for component in ("scheduler", "worker"):
        env = specs.dask_env(spec, component)
        assert env[variable] == "curl git"
        (other,) = {"EXTRA_APT_PACKAGES", "EXTRA_APK_PACKAGES"} - {variable}
        assert other not in env


def test_pip_packages_and_tls_env() -> None:
    spec = cluster(pip_packages=["dask[array]", "pandas>=2"], tls_secret="dask-tls")
    assert not spec.run_as_root
    for component in ("scheduler", "worker"):
        env = specs.dask_env(spec, component)
        assert env["EXTRA_PIP_PACKAGES"] == "dask[array] pandas>=2"
        assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "true"
        assert env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] == "/etc/dask/tls/ca.crt"
        for role in ("SCHEDULER", "WORKER"):
            assert env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] == "/etc/dask/tls/tls.crt"
            assert env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] == "/etc/dask/tls/tls.key"


# --- the prepuller ---


def test_prepull_spec() -> None:
    spec = PrepullSpec(name="demo", images=["b:1", "a:1", "b:1"], tolerations=[{"operator": "Exists"}])
    assert spec.namespace == "default"
    assert spec.pause_image == specs.DEFAULT_PAUSE_IMAGE == "registry.k8s.io/pause:3.10"
    assert spec.images == ("b:1", "a:1", "b:1")
    assert spec.unique_images == ("a:1", "b:1")
    assert spec.tolerations == ({"operator": "Exists"},)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"images": []}, "images must be a non-empty list"),
        ({"images": "a:1"}, "images must be a non-empty list"),
        ({"images": ["a:1", ""]}, "images must be a non-empty image reference"),
        ({"name": "Demo"}, "name must be"),
        ({"namespace": "a_b"}, "namespace must be"),
        ({"affinity": {"nodeAfinity": {}}}, "affinity: unknown key 'nodeAfinity'"),
        ({"affinity": ["x"]}, "affinity must be a mapping"),
        ({"priority_class": "High"}, "priority_class must be a DNS-1123 subdomain"),
        ({"tolerations": [{"operator": "Maybe"}]}, "operator must be Exists or Equal"),
        ({"node_selector": {"a": "b c"}}, "not a valid label value"),
        ({"image_pull_secrets": ["a b"]}, "image_pull_secrets must be"),
        ({"pause_image": ""}, "pause_image must be"),
    ],
)
def test_invalid_prepull_spec(overrides: dict[str, Any], match: str) -> None:
    assert_config_error(lambda: PrepullSpec(**{"name": "demo", "images": ["a:1"], **overrides}), match)


def test_images_checksum() -> None:
    checksum = specs.images_checksum(["a:1", "b:1"])
    assert len(checksum) == 64
    assert specs.images_checksum(["b:1", "a:1", "a:1"]) == checksum
    assert specs.images_checksum(["a:1", "b:2"]) != checksum
    assert specs.images_checksum(["a:1"]) != checksum
