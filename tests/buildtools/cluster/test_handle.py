"""The pure parts of the handle: the Python minor it compares, and the spec it attaches with
(stored on the scheduler Deployment, read back by from_name and by a re-apply). The handle
itself runs against a real scheduler in tests/e2e and against kwok in test_deploy.py."""

from __future__ import annotations

import json

from buildtools.cluster.client_guard import python_minor
from buildtools.cluster.deploy import given_fields
from buildtools.cluster.handle import HandleOptions
from buildtools.cluster.render import spec_annotation
from buildtools.cluster.specs import ClusterSpec, cluster_spec

IMAGE = "registry.example:5000/minimaldask/debian:2026.8.0-py3.13"


def test_python_minor_of_a_versions_answer() -> None:
    assert python_minor({"host": {"python": "3.13.5.final.0", "OS": "Linux"}}) == "3.13"
    assert python_minor({}) is None


def test_the_stored_spec_gives_the_same_cluster_back_with_the_live_workers() -> None:
    spec = ClusterSpec(
        name="demo",
        namespace="data",
        image=IMAGE,
        n_workers=3,
        resources={"worker": {"requests": {"cpu": "500m"}, "limits": {"cpu": "2", "memory": "4Gi"}}},
        env={"A": "1"},
        pip_packages=["xarray"],
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        node_selector={"pool": "dask"},
        tls_secret="demo-tls",
        labels={"team": "x"},
    )
    stored = json.loads(spec_annotation(spec))
    assert "n_workers" not in stored  # the worker Deployment's replicas say how many
    assert cluster_spec(stored | {"n_workers": 7}) == spec.model_copy(update={"n_workers": 7})


def test_only_the_fields_given_count_as_given() -> None:
    spec = cluster_spec({"name": "demo", "image": IMAGE})
    assert given_fields(spec, {"n_workers": 2}) == {"name": "demo", "image": IMAGE, "n_workers": 2}
    assert given_fields({"name": "demo"}, {}) == {"name": "demo"}
    assert given_fields(None, {"env": {"A": "2"}}) == {"env": {"A": "2"}}


def test_the_handles_options_are_taken_out_of_the_keywords_and_the_rest_stays() -> None:
    keywords = {"connect": False, "shutdown_on_close": True, "n_workers": 3}
    options = HandleOptions.take(keywords)
    assert options == HandleOptions(connect=False, shutdown_on_close=True)
    assert keywords == {"n_workers": 3}  # the cluster's fields, for ClusterSpec
    assert HandleOptions.take({}) == HandleOptions()
