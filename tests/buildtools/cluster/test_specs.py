"""Cluster and prepuller specs: defaults, validation (one ConfigError line naming the field),
the spec file and its JSON schema (pure, no cluster needed)."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from buildtools.cluster import contract, labels, specs
from buildtools.cluster.spec_parts import ClusterResources, Resources
from buildtools.cluster.specs import ClusterSpec, PrepullSpec, cluster_spec
from buildtools.errors import ConfigError
from buildtools.settings import REPO_ROOT

SCHEMA_FILE = REPO_ROOT / "docs" / "cluster-spec.schema.json"
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
    assert spec.network_policy is True  # secure by default: docs/TLS.md
    assert not spec.exposed and cluster(service_type="NodePort").exposed
    assert spec.worker_grace_seconds == 60
    assert spec.resources == ClusterResources()
    assert not spec.run_as_root
    assert spec.image == contract.default_image()


def test_spec_is_frozen_and_normalised() -> None:
    spec = cluster(pip_packages=["pandas"], scheduler_args=["--idle-timeout", "1h"], image_pull_secrets=["regcred"])
    assert spec.pip_packages == ("pandas",)
    assert spec.scheduler_args == ("--idle-timeout", "1h")
    assert spec.image_pull_secrets == ("regcred",)
    with pytest.raises(ValidationError, match="frozen"):
        spec.n_workers = 2  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        spec.resources.worker.limits = {}  # type: ignore[misc]


def test_resources_from_mapping_or_model() -> None:
    as_mapping = cluster(resources={"worker": {"requests": {"cpu": 1}, "limits": {"cpu": "2", "memory": "4Gi"}}})
    as_model = cluster(
        resources=ClusterResources(worker=Resources(requests={"cpu": "1"}, limits={"cpu": "2", "memory": "4Gi"}))
    )
    assert as_mapping.resources == as_model.resources
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
        ({"name": "a" * (labels.NAME_MAX_LENGTH + 1)}, "at most 53 characters"),
        ({"name": 3}, "name must be"),
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
        ({"resources": {"workers": {}}}, r"resources: unknown key 'workers' \(known: scheduler, worker\)"),
        ({"resources": ["worker"]}, "resources must be a mapping"),
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
        ({"pip_packages": {"pandas"}}, "pip_packages must be a list"),  # a set has no order
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
        ({"placement": {"workers": {}}}, r"placement: unknown key 'workers' \(known: scheduler, worker\)"),
        (
            {"placement": {"worker": {"node_selector": {"gpu": "a b"}}}},
            r"placement\.worker\.node_selector\.gpu: .*label value",
        ),
        ({"placement": {"scheduler": {"tolerations": [{"operator": "In"}]}}}, "operator must be Exists or Equal"),
        ({"placement": {"worker": {"affinity": {"nodeAfinity": {}}}}}, "unknown key 'nodeAfinity'"),
        ({"image_platforms": ["linux/s390x"]}, "image_platforms must be one of linux/amd64, linux/arm64, linux/arm/v7"),
        ({"image_platforms": "linux/amd64"}, "image_platforms must be a list of platforms"),
        ({"env": {"GPU_WORKER": "true"}}, "GPU_WORKER is set by minimaldask"),
        ({"worker_grace_seconds": -1}, "worker_grace_seconds must be an integer >= 0"),
        ({"labels": {"dask.org/component": "x"}}, "labels must not set dask.org/component"),
        ({"labels": {"team": "x" * 64}}, "not a valid label value"),
        ({"n_worker": 3}, r"^unknown key 'n_worker' \(known: name, namespace, image, n_workers, "),
        ({"platform_uid": "yes please"}, "platform_uid"),
        ({"network_policy": "off please"}, "network_policy"),
        ({"platform_uid": True, "system_packages": ["curl"]}, "system_packages need root"),
    ],
)
def test_invalid_cluster_spec(overrides: dict[str, Any], match: str) -> None:
    assert_config_error(lambda: cluster(**overrides), match)


# --- the prepuller ---


def test_prepull_spec() -> None:
    spec = PrepullSpec(name="demo", images=["b:1", "a:1", "b:1"], tolerations=[{"operator": "Exists"}])
    assert spec.namespace == "default"
    assert spec.pause_image == specs.DEFAULT_PAUSE_IMAGE == "registry.k8s.io/pause:3.10"
    assert PrepullSpec(name="demo", images=("a:1",)) == PrepullSpec(name="demo", images=["a:1"])
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


# --- one schema: overrides, the spec file, the JSON schema ---


def test_cluster_spec_overrides_fields_and_validates_again() -> None:
    base = cluster(n_workers=2, tls_secret="dask-tls", env={"A": "1"})
    assert cluster_spec(base) == base
    changed = cluster_spec(base, n_workers=5, name="other")
    assert (changed.name, changed.n_workers, changed.tls_secret, changed.env) == ("other", 5, "dask-tls", {"A": "1"})
    assert cluster_spec({"name": "demo", "image": IMAGE}, namespace="dask") == cluster()
    # The override is checked with the rest: here against the TLS variables the spec reserves.
    assert_config_error(
        lambda: cluster_spec(base, env={"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": "x"}), "TLS__CA_FILE is set by"
    )
    assert_config_error(lambda: cluster_spec({1: "x"}, name="demo"), r"unknown key 1 \(known: name, ")
    assert_config_error(lambda: cluster_spec(), "name must be given")


def test_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("name: demo\nnamespace: dask\nresources:\n  worker:\n    limits: {cpu: 2}\n")
    fields = specs.read_spec_file(path)
    assert fields == {"name": "demo", "namespace": "dask", "resources": {"worker": {"limits": {"cpu": 2}}}}
    assert cluster_spec(fields, image=IMAGE).resources.worker.limits == {"cpu": "2"}
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert specs.read_spec_file(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (None, r"cannot read the spec file .*missing.yaml: No such file or directory"),
        ("name: [demo\n", r"cluster.yaml:2:1: not valid YAML: expected ',' or ']'"),
        ("- name: demo\n", "cluster.yaml: a spec file is a mapping of ClusterSpec fields, got list"),
        (b"name: \xff\n", "cannot read the spec file"),
    ],
)
def test_bad_spec_file(tmp_path: Path, text: str | bytes | None, match: str) -> None:
    path = tmp_path / ("missing.yaml" if text is None else "cluster.yaml")
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    assert_config_error(lambda: specs.read_spec_file(path), match)


def test_the_committed_schema_is_the_models() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == ClusterSpec.model_json_schema()
    result = subprocess.run(
        [sys.executable, "-m", "buildtools", "render", "spec-schema"], capture_output=True, text=True, check=True
    )
    assert result.stdout == SCHEMA_FILE.read_text(), "regenerate: buildtools render spec-schema > " + str(SCHEMA_FILE)


def test_the_documented_example_is_a_valid_spec() -> None:
    """The example in docs/CLUSTER-SPEC.md, as a spec file gives it."""
    doc = (REPO_ROOT / "docs" / "CLUSTER-SPEC.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = cluster_spec(yaml.safe_load(example))
    assert spec.name == "analysis"
    assert spec.resources.worker.limits
