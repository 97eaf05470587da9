"""A Dask container's environment from a spec, as the entrypoint reads it, and the scheduler's
in-cluster address (pure)."""

from typing import Any

import pytest

from buildtools.cluster import contract
from buildtools.cluster.address import dashboard_address, scheduler_address
from buildtools.cluster.environment import dask_env
from buildtools.cluster.specs import ClusterSpec
from buildtools.errors import ConfigError

IMAGE = "registry.example:5000/minimaldask/debian:2026.8.0"


def cluster(**overrides: Any) -> ClusterSpec:
    return ClusterSpec(**{"name": "demo", "namespace": "dask", "image": IMAGE, **overrides})


def test_scheduler_address() -> None:
    assert scheduler_address("demo", "dask", tls=False) == "tcp://demo-scheduler.dask.svc:8786"
    assert scheduler_address("demo", "dask", tls=True) == "tls://demo-scheduler.dask.svc:8786"
    assert dashboard_address("demo", "dask") == "http://demo-scheduler.dask.svc:8787"


def test_env_of_an_unknown_component() -> None:
    with pytest.raises(ConfigError, match="component must be scheduler, worker or runner"):
        dask_env(cluster(), "prepuller")


def test_scheduler_env_of_a_cluster_without_tls() -> None:
    spec = cluster(scheduler_args=["--idle-timeout", "1h"], env={"B": "2", "A": "1"}, tls=False)
    env = dask_env(spec, "scheduler")
    assert env == {
        "WORKER": "false",
        "PORT": "8786",
        "DASHBOARD_PORT": "8787",
        "MINIMALDASK_CLUSTER": "demo",
        "MINIMALDASK_NAMESPACE": "dask",
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
    env = dask_env(cluster(resources={"worker": {"limits": limits}}), "worker")
    assert env["WORKER"] == "true"
    assert env["DASHBOARD_PORT"] == "8788"
    assert env["DASK_SCHEDULER_ADDRESS"] == "tls://demo-scheduler.dask.svc:8786"  # TLS by default
    assert env.get("WORKER_NTHREADS") == nthreads
    assert env.get("WORKER_MEMORY_LIMIT") == memory


def test_worker_env_can_override_derived_values() -> None:
    spec = cluster(resources={"worker": {"limits": {"cpu": "4"}}}, env={"WORKER_NTHREADS": "1"})
    assert dask_env(spec, "worker")["WORKER_NTHREADS"] == "1"
    assert dask_env(spec, "scheduler")["WORKER_NTHREADS"] == "1"  # env goes to every Dask container


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
        env = dask_env(spec, component)
        assert env[variable] == "curl git"
        (other,) = {"EXTRA_APT_PACKAGES", "EXTRA_APK_PACKAGES"} - {variable}
        assert other not in env


@pytest.mark.parametrize("tls_secret", [None, "dask-tls"], ids=["its-own", "the-users"])
def test_pip_packages_and_the_tls_env(tls_secret: str | None) -> None:
    spec = cluster(pip_packages=["dask[array]", "pandas>=2"], tls=True, tls_secret=tls_secret)
    assert not spec.run_as_root
    assert spec.tls_secret_name == (tls_secret or "demo-tls") and spec.owns_tls_secret == (tls_secret is None)
    for component in ("scheduler", "worker"):
        env = dask_env(spec, component)
        assert env["EXTRA_PIP_PACKAGES"] == "dask[array] pandas>=2"
        assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "true"
        assert env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] == "/etc/dask/tls/ca.crt"
        for role in ("SCHEDULER", "WORKER"):
            assert env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] == "/etc/dask/tls/tls.crt"
            assert env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] == "/etc/dask/tls/tls.key"


def test_gpu_workers_say_so_to_the_entrypoint() -> None:
    spec = cluster(
        resources={"worker": {"limits": {"nvidia.com/gpu": "2"}}, "scheduler": {"limits": {"nvidia.com/gpu": "1"}}}
    )
    assert dask_env(spec, "worker")["GPU_WORKER"] == "true"
    assert "GPU_WORKER" not in dask_env(spec, "scheduler")  # the scheduler is never a worker
    assert "GPU_WORKER" not in dask_env(cluster(), "worker")
    assert "GPU_WORKER" in contract.MANAGED_ENV


def test_a_users_tls_secret_needs_tls() -> None:
    with pytest.raises(ConfigError, match="tls_secret needs tls"):
        cluster(tls=False, tls_secret="mine")
    assert cluster().tls  # the default; tls=False opts out
    plain = cluster(tls=False)
    assert dask_env(plain, "worker")["DASK_SCHEDULER_ADDRESS"] == "tcp://demo-scheduler.dask.svc:8786"
    assert not any(key.startswith("DASK_DISTRIBUTED__COMM__") for key in dask_env(plain, "worker"))
