"""The images under an arbitrary UID in group 0, the way OpenShift runs every container
(`docker run --user 1000650000:0`): a UID with no passwd entry, which may write only what
group 0 may write. On every image and platform the suite builds (ARM under QEMU).

A scheduler and a worker install a package at start (EXTRA_PIP_PACKAGES, into the image's
venv), and a client, in a third container of the same image and UID, computes on them.
Every container uses the host network with its servers bound to 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import Container, docker

from buildtools.images.config import load_image
from tests.conftest import RAPIDS_PLATFORM, TESTED_VARIANTS
from tests.helpers.host import free_port, platform_env, run_once
from tests.helpers.wheels import GREETING, WHEEL_PACKAGE, write_wheel

pytestmark = pytest.mark.images

ARBITRARY_USER = "1000650000:0"
# (image, Python, platform): every Debian variant the suite tests, the dataframe flavour and
# RAPIDS on the platforms the suite builds of them.
DATAFRAME = load_image("debian-dataframe")
CASES = [
    *(("debian", python, platform) for python, platform in TESTED_VARIANTS),
    *(("debian-dataframe", DATAFRAME.default_python, platform) for platform in DATAFRAME.platforms),
    ("rapids", load_image("rapids").default_python, RAPIDS_PLATFORM),
]
TIMEOUT = 300  # seconds for the containers to start and compute (QEMU is slow)

# Runs in the client container: argv[1] the scheduler, argv[2] "dataframe" for that flavour.
CLIENT = f"""
import json, os, sys, tempfile
import dask.array as da
from distributed import Client, get_worker

def probe():
    import {WHEEL_PACKAGE}
    directory = get_worker().local_directory
    with tempfile.NamedTemporaryFile(dir=directory):
        pass
    return {{"ids": [os.getuid(), os.getgid()], "greeting": {WHEEL_PACKAGE}.GREETING, "local": directory}}

def scheduler_probe():
    import {WHEEL_PACKAGE}
    return [os.getuid(), {WHEEL_PACKAGE}.GREETING]

with Client(sys.argv[1], timeout={TIMEOUT}) as client:
    client.wait_for_workers(1, timeout={TIMEOUT})
    result = {{
        "worker": client.submit(probe, pure=False).result(timeout={TIMEOUT}),
        "scheduler": client.run_on_scheduler(scheduler_probe),
        "sum": int(da.ones((1000, 1000), chunks=250).sum().compute()),
    }}
    if sys.argv[2] == "dataframe":
        import dask.dataframe as dd, pandas as pd
        df = dd.from_pandas(pd.DataFrame({{"k": [i % 3 for i in range(300)]}}), npartitions=3)
        result["groups"] = df.groupby("k").k.count().compute().to_dict()
    print(json.dumps(result))
"""


def start(image: str, platform: str, env: dict[str, str], wheels: Path) -> Container:
    return docker.run(
        image,
        platform=platform,
        user=ARBITRARY_USER,
        envs={"HOST": "127.0.0.1", **platform_env(platform), **env},
        volumes=[(str(wheels), "/wheels", "ro")],
        detach=True,
        networks=["host"],
    )


@pytest.fixture(params=CASES, ids=[f"{name}-py{python}-{platform}" for name, python, platform in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    name, python, platform = request.param
    if name == "debian":
        image = request.getfixturevalue("debian_images")[python]
    else:
        image = request.getfixturevalue({"debian-dataframe": "dataframe_image", "rapids": "rapids_image"}[name])
    return name, str(image), platform


@pytest.fixture
def cluster(case: tuple[str, str, str], tmp_path: Path) -> Iterator[tuple[str, list[Container]]]:
    _, image, platform = case
    extra = {"EXTRA_PIP_PACKAGES": f"/wheels/{write_wheel(tmp_path).name}"}
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = start(image, platform, {"PORT": str(port), "DASHBOARD_PORT": str(free_port()), **extra}, tmp_path)
    worker = start(
        image,
        platform,
        {"WORKER": "true", "DASK_SCHEDULER_ADDRESS": address, "WORKER_NTHREADS": "1", **extra},
        tmp_path,
    )
    try:
        yield address, [scheduler, worker]
    finally:
        for container in (worker, scheduler):
            container.remove(force=True)


def test_scheduler_worker_and_runtime_pip_install(
    case: tuple[str, str, str], cluster: tuple[str, list[Container]]
) -> None:
    name, image, platform = case
    address, servers = cluster
    code, output = run_once(
        image,
        platform,
        command=["python", "-c", CLIENT, address, "dataframe" if "dataframe" in name else "array"],
        user=ARBITRARY_USER,
        networks=["host"],
        timeout=2 * TIMEOUT,
    )
    logs = "\n".join(f"--- {c.name}:\n{docker.logs(c)}" for c in servers)
    assert code == 0, f"{output}\n{logs}"
    result = json.loads(output.splitlines()[-1])
    uid = int(ARBITRARY_USER.split(":")[0])
    assert result["worker"]["ids"] == [uid, 0]
    assert result["worker"]["greeting"] == GREETING
    assert result["scheduler"] == [uid, GREETING]
    assert result["sum"] == 1000 * 1000
    if "dataframe" in name:
        assert result["groups"] == {"0": 100, "1": 100, "2": 100}
