"""The Debian image in real containers: the default Python on every platform (arm ones under
QEMU), every other Python on amd64 (tests/conftest.py TESTED_VARIANTS)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
from python_on_whales import Container, docker

from buildtools.settings import REPO_ROOT
from tests.conftest import DEBIAN, TESTED_VARIANTS
from tests.helpers import ssl_error_queue as reproduction
from tests.helpers.host import platform_env, run_once
from tests.helpers.tls import write_credentials
from tests.helpers.wheels import GREETING, WHEEL_PACKAGE, write_wheel

pytestmark = pytest.mark.images


@pytest.fixture(scope="module", params=TESTED_VARIANTS, ids=lambda variant: f"py{variant[0]}-{variant[1]}")
def variant(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


@pytest.fixture(scope="module")
def python(variant: tuple[str, str]) -> str:
    return variant[0]


@pytest.fixture(scope="module")
def platform(variant: tuple[str, str]) -> str:
    return variant[1]


@pytest.fixture(scope="module")
def image(debian_images: dict[str, str], python: str) -> str:
    return debian_images[python]


@pytest.fixture(scope="module")
def idle_container(image: str, platform: str) -> Iterator[Container]:
    container = docker.run(
        image, ["sleep", "600"], platform=platform, detach=True, networks=["none"], envs=platform_env(platform)
    )
    yield container
    container.remove(force=True)


@pytest.fixture(scope="module")
def host(idle_container: Container) -> testinfra.host.Host:
    return testinfra.get_host(f"docker://{idle_container.id}")


def test_runs_the_requested_architecture(host: testinfra.host.Host, platform: str) -> None:
    expected = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}[platform]
    assert host.check_output("uname -m") == expected


def test_runs_as_fixed_non_root_user(host: testinfra.host.Host) -> None:
    assert host.check_output("id -u") == "1000"
    assert host.check_output("id -g") == "1000"
    assert host.user("dask").home == "/home/dask"


def test_files_owners_and_modes(host: testinfra.host.Host) -> None:
    entrypoint = host.file("/usr/local/bin/entrypoint.sh")
    assert entrypoint.user == "root" and entrypoint.mode == 0o755
    # Owned by the image user and group 0, group-writable, setgid: see test_arbitrary_uid.py.
    for path in ("/opt/dask", "/opt/dask/bin", "/home/dask"):
        directory = host.file(path)
        assert (directory.user, directory.group) == ("dask", "root"), path
        assert directory.mode & 0o2070 == 0o2070, f"{path}: {directory.mode:o}"
    # Whatever the owner may write, group 0 may write too (and it owns all of it).
    assert host.check_output("find /opt/dask /home/dask ! -type l -perm -u=w ! -perm -g=w -print -quit") == ""
    assert host.check_output("find /opt/dask /home/dask ! -group 0 -print -quit") == ""
    assert host.file("/opt/dask/bin/dask").is_file
    assert host.file("/usr/bin/tini").is_file


def test_pinned_versions_inside(host: testinfra.host.Host, python: str) -> None:
    versions = host.check_output(
        "python -c 'import sys, dask, distributed, bokeh; "
        "print(sys.version_info[0], sys.version_info[1], dask.__version__, "
        "distributed.__version__, bokeh.__version__)'"
    ).split()
    assert versions == [
        *python.split("."),
        DEBIAN.versions["dask"],
        DEBIAN.versions["dask"],
        DEBIAN.versions["bokeh"],
    ]


def test_no_compiler_caches_or_package_lists(host: testinfra.host.Host) -> None:
    for tool in ("gcc", "cc", "g++", "make"):
        assert not host.exists(tool), tool
    assert host.check_output("ls -A /var/lib/apt/lists | grep -v '^lock$' | grep -v '^partial$' || true") == ""
    assert host.check_output("find /var/cache/apt -name '*.bin' | head -1") == ""
    assert not host.file("/home/dask/.cache/pip").exists
    assert not host.file("/root/.cache/pip").exists
    assert host.check_output("find / -xdev -name '*.whl' 2>/dev/null | head -1") == ""


@pytest.mark.parametrize(
    ("source", "installed", "name", "value"),
    [
        ("controller.py", "minimaldask-controller.py", "PERIOD", "1.0"),
        ("client_guard.py", "minimaldask-client-guard.py", "ALLOW_VARIABLE", "PYTHON_MISMATCH"),
        ("ssl_error_queue.py", "minimaldask-ssl-error-queue.py", "INSTALLED", "_minimaldask_clears_error_queue"),
    ],
)
def test_the_schedulers_preloads_are_the_repositorys_and_load_as_the_image_user(
    host: testinfra.host.Host, source: str, installed: str, name: str, value: str
) -> None:
    preload = host.file(f"/usr/local/lib/{installed}")
    assert preload.user == "root" and preload.mode == 0o644
    assert preload.content_string == (REPO_ROOT / "buildtools" / "cluster" / source).read_text()
    # As the scheduler's preload imports it: readable by the image user, distributed found.
    code = f"import runpy; m = runpy.run_path('/usr/local/lib/{installed}'); print(m['{name}'])"
    assert host.check_output(f'python -c "{code}"') == value


def test_a_failed_tls_connection_fails_the_next_read_unless_the_error_queue_is_cleared(
    image: str, platform: str, python: str, tmp_path: Path
) -> None:
    """python/cpython#148594 in the image's own Python (tests/helpers/ssl_error_queue.py): on the
    default Python (3.13, OpenSSL 3.5) a read on a second connection fails with the first one's
    reset; with the preload every scheduler, nanny and worker gets, it says "would block"."""
    tmp_path.chmod(0o755)  # the image's user reads it
    shutil.copy(reproduction.SCRIPT, tmp_path / "reproduction.py")
    (tmp_path / "reproduction.py").chmod(0o644)
    command = ["python", "/repro/reproduction.py", *(f"/repro/{Path(p).name}" for p in write_credentials(tmp_path))]
    volumes = [(str(tmp_path), "/repro", "ro")]
    code, without = run_once(image, platform, command=command, volumes=volumes)
    assert code == 0, without
    if python == DEBIAN.default_python:
        assert without.strip() == "ConnectionResetError"  # the bug, as the scheduler met it
    fixed = [*command, "/usr/local/lib/minimaldask-ssl-error-queue.py"]
    assert run_once(image, platform, command=fixed, volumes=volumes) == (0, f"{reproduction.CORRECT}\n")


def test_other_commands_run_instead(image: str, platform: str) -> None:
    assert run_once(image, platform, command=["python", "-c", "print(6 * 7)"]) == (0, "42\n")


def test_what_strip_sh_keeps_imports(image: str, platform: str) -> None:
    # numpy.testing imports a module of numpy's own (stripped) tests; the dashboard needs bokeh.
    script = "import numpy.testing, numpy.linalg, numpy.fft, numpy.random, bokeh.plotting, distributed; print('ok')"
    assert run_once(image, platform, command=["python", "-c", script]) == (0, "ok\n")


# A scheduler and a worker process of the image, on the container's own loopback.
COMPUTE = """
import dask.array as da
from dask.distributed import Client, LocalCluster
with LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None, host="127.0.0.1") as cluster:
    with Client(cluster) as client:
        print(da.ones((1000, 1000), chunks=(250, 250)).sum().compute(), client.run(lambda: 1) != {})
"""


def test_a_scheduler_and_a_worker_of_the_image_compute(image: str, platform: str) -> None:
    quiet = {"DASK_LOGGING__DISTRIBUTED": "error"}
    assert run_once(image, platform, env=quiet, command=["python", "-c", COMPUTE]) == (0, "1000000.0 True\n")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER": "maybe"}, "WORKER must be true or false, got 'maybe'"),
        ({"PORT": "http"}, "PORT must be a port number (0-65535), got 'http'"),
        ({"DASHBOARD_PORT": "70000"}, "DASHBOARD_PORT must be a port number (0-65535), got '70000'"),
        ({"INSTALL_TIMEOUT": "0"}, "INSTALL_TIMEOUT must be a positive integer, got '0'"),
        ({"PYTHON_MISMATCH": "sometimes"}, "PYTHON_MISMATCH must be refuse or allow, got 'sometimes'"),
        ({"WORKER": "true", "WORKER_NTHREADS": "many"}, "WORKER_NTHREADS must be a positive integer, got 'many'"),
        (
            {"WORKER": "true", "SCHEDULER_WAIT_TIMEOUT": "soon"},
            "SCHEDULER_WAIT_TIMEOUT must be a positive integer, got 'soon'",
        ),
        ({"WORKER": "true", "GPU_WORKER": "maybe"}, "GPU_WORKER must be true, false or auto, got 'maybe'"),
        ({"WORKER": "true", "GPU_WORKER": "true"}, "GPU_WORKER=true but this image has no dask-cuda"),
        ({"EXTRA_APK_PACKAGES": "curl"}, "EXTRA_APK_PACKAGES is set but this image has no apk"),
        ({"EXTRA_APT_PACKAGES": "curl"}, "EXTRA_APT_PACKAGES needs root"),
        ({"EXTRA_PIP_PACKAGES": "/wheels/missing-1.0-py3-none-any.whl"}, "installing /wheels/missing"),
    ],
)
def test_bad_configuration_exits_non_zero_with_the_reason(image: str, env: dict[str, str], message: str) -> None:
    code, output = run_once(image, "linux/amd64", env=env)
    assert code != 0
    assert f"entrypoint: error: {message}" in output, output


def test_runtime_pip_install_as_the_image_user(image: str, tmp_path: Path, platform: str) -> None:
    wheel = write_wheel(tmp_path)
    code, output = run_once(
        image,
        platform,
        env={"EXTRA_PIP_PACKAGES": f"/wheels/{wheel.name}"},
        command=["python", "-c", f"import {WHEEL_PACKAGE}; print({WHEEL_PACKAGE}.GREETING)"],
        volumes=[(str(tmp_path), "/wheels", "ro")],
    )
    assert code == 0, output
    assert GREETING in output.splitlines(), output


def test_package_lists_are_split_without_globbing(debian_image: str, tmp_path: Path) -> None:
    # In a directory holding a wheel, a globbing entrypoint would turn '*' into that file
    # name and install it; pip must get the word as given, and reject it.
    write_wheel(tmp_path)
    code, output = run_once(
        debian_image,
        "linux/amd64",
        env={"EXTRA_PIP_PACKAGES": "*"},
        command=["python", "-c", f"import {WHEEL_PACKAGE}"],
        volumes=[(str(tmp_path), "/wheels", "ro")],
        workdir="/wheels",
    )
    assert code != 0, output
    assert "Invalid requirement: '*'" in output, output
    assert "entrypoint: error: installing * failed" in output, output


@pytest.mark.parametrize(
    ("env", "command", "address", "reason"),
    [
        (
            {"WORKER": "true", "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"},
            None,
            "tcp://127.0.0.1:9",
            "Connection refused",
        ),
        (
            {"WORKER": "true", "DASK_SCHEDULER_SERVICE": "nowhere"},
            None,
            "tcp://nowhere:8786",
            "cannot resolve nowhere: ",
        ),
        # A batch job's runner: a client command waits for its scheduler before it starts.
        (
            {"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"},
            ["echo", "started"],
            "tcp://127.0.0.1:9",
            "Connection refused",
        ),
    ],
    ids=["refused", "unresolved", "client-command"],
)
def test_worker_or_client_without_scheduler_fails_in_bounded_time_with_one_line(
    debian_image: str, env: dict[str, str], command: list[str] | None, address: str, reason: str
) -> None:
    started = time.monotonic()
    env = {"SCHEDULER_WAIT_TIMEOUT": "5", **env}
    code, output = run_once(debian_image, "linux/amd64", env=env, command=command, timeout=60)
    elapsed = time.monotonic() - started
    assert code != 0, output
    assert elapsed < 30, f"{elapsed:.0f} s for SCHEDULER_WAIT_TIMEOUT=5"
    (error,) = [line for line in output.splitlines() if "error" in line.lower()]
    expected = f"entrypoint: error: no scheduler at {address} after 5 s (SCHEDULER_WAIT_TIMEOUT): "
    assert error.startswith(expected), output
    assert reason in error, output
    assert "Traceback" not in output and "started" not in output, output


def test_system_packages_install_as_root_goes_to_apt(image: str) -> None:
    # As root, the request reaches apt; with no network the install fails loudly, bounded in time.
    code, output = run_once(image, "linux/amd64", env={"EXTRA_APT_PACKAGES": "curl", "INSTALL_TIMEOUT": "20"}, user="0")
    assert code != 0
    assert "entrypoint: installing package lists" in output
    assert "entrypoint: error: installing package lists" in output


def test_idle_timeout_argument_reaches_the_scheduler(image: str) -> None:
    code, output = run_once(
        image, "linux/amd64", env={"ARGUMENTS": "--idle-timeout 2s", "PORT": "0", "DASHBOARD_PORT": "0"}
    )
    assert code == 0, output
    assert "starting scheduler" in output
    assert "idle" in output.lower()
