"""The Debian image in real containers, on every platform (arm ones under QEMU)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
from python_on_whales import Container, docker

from buildtools.images.config import load_image
from tests.helpers.host import platform_env

pytestmark = pytest.mark.images

CONFIG = load_image("debian")
PLATFORMS = list(CONFIG.platforms)


def run_once(
    image: str,
    platform: str,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    user: str | None = None,
    volumes: list[tuple[str, str, str]] | None = None,
) -> tuple[int, str]:
    """Run a container to completion (no network); return its exit code and output."""
    container = docker.run(
        image,
        command or [],
        platform=platform,
        envs={**platform_env(platform), **(env or {})},
        detach=True,
        networks=["none"],
        user=user,
        volumes=volumes or [],
    )
    try:
        return int(docker.wait(container)), docker.logs(container)
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module", params=PLATFORMS)
def platform(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def idle_container(debian_image: str, platform: str) -> Iterator[Container]:
    container = docker.run(
        debian_image, ["sleep", "600"], platform=platform, detach=True, networks=["none"], envs=platform_env(platform)
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
    assert host.file("/opt/dask").user == "dask"
    assert host.file("/opt/dask/bin/dask").is_file
    assert host.file("/usr/bin/tini").is_file


def test_pinned_versions_inside(host: testinfra.host.Host) -> None:
    versions = host.check_output(
        "python -c 'import sys, dask, distributed, bokeh; "
        "print(sys.version_info[0], sys.version_info[1], dask.__version__, "
        "distributed.__version__, bokeh.__version__)'"
    ).split()
    assert versions == [
        *CONFIG.versions["python"].split("."),
        CONFIG.versions["dask"],
        CONFIG.versions["dask"],
        CONFIG.versions["bokeh"],
    ]


def test_no_compiler_caches_or_package_lists(host: testinfra.host.Host) -> None:
    for tool in ("gcc", "cc", "g++", "make"):
        assert not host.exists(tool), tool
    assert host.check_output("ls -A /var/lib/apt/lists | grep -v '^lock$' | grep -v '^partial$' || true") == ""
    assert host.check_output("find /var/cache/apt -name '*.bin' | head -1") == ""
    assert not host.file("/home/dask/.cache/pip").exists
    assert not host.file("/root/.cache/pip").exists
    assert host.check_output("find / -xdev -name '*.whl' 2>/dev/null | head -1") == ""


def test_other_commands_run_instead(debian_image: str, platform: str) -> None:
    assert run_once(debian_image, platform, command=["python", "-c", "print(6 * 7)"]) == (0, "42\n")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER": "maybe"}, "WORKER must be true or false, got 'maybe'"),
        ({"PORT": "http"}, "PORT must be a port number (0-65535), got 'http'"),
        ({"DASHBOARD_PORT": "70000"}, "DASHBOARD_PORT must be a port number (0-65535), got '70000'"),
        ({"INSTALL_TIMEOUT": "0"}, "INSTALL_TIMEOUT must be a positive integer, got '0'"),
        ({"WORKER": "true", "WORKER_NTHREADS": "many"}, "WORKER_NTHREADS must be a positive integer, got 'many'"),
        ({"WORKER": "true", "GPU_WORKER": "maybe"}, "GPU_WORKER must be true, false or auto, got 'maybe'"),
        ({"WORKER": "true", "GPU_WORKER": "true"}, "GPU_WORKER=true but this image has no dask-cuda"),
        ({"EXTRA_APK_PACKAGES": "curl"}, "EXTRA_APK_PACKAGES is set but this image has no apk"),
        ({"EXTRA_APT_PACKAGES": "curl"}, "EXTRA_APT_PACKAGES needs root"),
        ({"EXTRA_PIP_PACKAGES": "/wheels/missing-1.0-py3-none-any.whl"}, "installing /wheels/missing"),
    ],
)
def test_bad_configuration_exits_non_zero_with_the_reason(debian_image: str, env: dict[str, str], message: str) -> None:
    code, output = run_once(debian_image, "linux/amd64", env=env)
    assert code != 0
    assert f"entrypoint: error: {message}" in output, output


def test_runtime_pip_install_as_the_image_user(debian_image: str, tmp_path: Path, platform: str) -> None:
    wheel = write_wheel(tmp_path)
    tmp_path.chmod(0o755)  # readable by the image user (UID 1000)
    wheel.chmod(0o644)
    code, output = run_once(
        debian_image,
        platform,
        env={"EXTRA_PIP_PACKAGES": f"/wheels/{wheel.name}"},
        command=["python", "-c", "import hello_minimaldask; print(hello_minimaldask.GREETING)"],
        volumes=[(str(tmp_path), "/wheels", "ro")],
    )
    assert code == 0, output
    assert "hello" in output.splitlines(), output


def test_system_packages_install_as_root_goes_to_apt(debian_image: str) -> None:
    # As root, the request reaches apt; with no network the install fails loudly, bounded in time.
    code, output = run_once(
        debian_image, "linux/amd64", env={"EXTRA_APT_PACKAGES": "curl", "INSTALL_TIMEOUT": "20"}, user="0"
    )
    assert code != 0
    assert "entrypoint: installing package lists" in output
    assert "entrypoint: error: installing package lists" in output


def write_wheel(directory: Path) -> Path:
    """A minimal pure-Python wheel, built by hand so the test needs no index."""
    import base64
    import hashlib
    import zipfile

    name = "hello_minimaldask"
    files = {
        f"{name}/__init__.py": 'GREETING = "hello"\n',
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{name}-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{name}-1.0.dist-info/RECORD,,")
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{name}-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def test_idle_timeout_argument_reaches_the_scheduler(debian_image: str) -> None:
    code, output = run_once(
        debian_image, "linux/amd64", env={"ARGUMENTS": "--idle-timeout 2s", "PORT": "0", "DASHBOARD_PORT": "0"}
    )
    assert code == 0, output
    assert "starting scheduler" in output
    assert "idle" in output.lower()
