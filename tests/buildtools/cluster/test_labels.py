"""The naming and label scheme: object names, labels, selectors (pure)."""

import pytest

from buildtools.cluster import labels
from buildtools.errors import ConfigError


def test_name_length_leaves_room_for_the_suffixes() -> None:
    assert labels.NAME_MAX_LENGTH == 53
    for component in labels.COMPONENTS:
        assert len(labels.component_name("a" * labels.NAME_MAX_LENGTH, component)) <= 63


def test_unknown_component() -> None:
    with pytest.raises(ConfigError, match="component must be one of scheduler, worker, prepuller, runner, got 'nanny'"):
        labels.component_labels("demo", "nanny")


def test_labels() -> None:
    assert labels.cluster_labels("demo") == {
        "app.kubernetes.io/name": "dask",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/managed-by": "minimaldask",
        "dask.org/cluster-name": "demo",
    }
    for component in labels.COMPONENTS:
        component_labels = labels.component_labels("demo", component)
        assert component_labels == {**labels.cluster_labels("demo"), "dask.org/component": component}
        assert labels.selector_labels("demo", component).items() <= component_labels.items()
    group_labels = {**labels.component_labels("demo", "worker"), **labels.group_labels("gpu")}
    assert set(group_labels) == set(labels.MANAGED_LABELS)
    assert labels.group_labels(None) == {}
    assert labels.worker_deployment_name("demo") == labels.component_name("demo", "worker")
    assert labels.worker_deployment_name("demo", "gpu") == "demo-worker-gpu"


def test_label_selector() -> None:
    assert labels.label_selector("demo") == "dask.org/cluster-name=demo"
    assert labels.label_selector("demo", "worker") == "dask.org/cluster-name=demo,dask.org/component=worker"


def test_scheduler_service_name() -> None:
    assert labels.scheduler_service_name("demo") == "demo-scheduler"
