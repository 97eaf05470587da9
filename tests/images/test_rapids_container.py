"""The RAPIDS image in real containers, without a GPU (linux/amd64; see the rapids_build fixture).

Without a GPU and its driver, each module must import as far as it can and then fail with
the specific error that says "no driver", never another one; a CPU worker of the image
computes; a GPU worker refuses to start in one line. The `gpu` test runs where a GPU is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from python_on_whales import Container, docker

from buildtools.images.build import TargetResult
from buildtools.images.config import MIRROR_REPOSITORY, load_image
from buildtools.settings import Settings
from tests.conftest import RAPIDS_PLATFORM
from tests.helpers.host import free_port, run_once

pytestmark = pytest.mark.images

CONFIG = load_image("rapids")
CUDA = CONFIG.versions["cuda"]


def run_python(image: str, script: str) -> dict[str, str]:
    """Run a Python script in the image; it prints one JSON object as its last line."""
    code, output = run_once(image, RAPIDS_PLATFORM, command=["python", "-c", script])
    assert code == 0, output
    return dict(json.loads(output.strip().splitlines()[-1]))


def test_builds_offline_within_budget(rapids_build: TargetResult, settings: Settings) -> None:
    # The base is the offline mirror in the local registry: nothing came from another registry.
    suite = CONFIG.pythons[CONFIG.default_python].mirror
    assert suite is not None
    assert rapids_build.target.build_args["BASE_IMAGE"] == f"{settings.registry}/{MIRROR_REPOSITORY}:{suite}"
    assert sorted(rapids_build.sizes) == ["linux/amd64"]  # what the suite builds (tests/conftest.py)
    assert [verdict.overruns for verdict in rapids_build.verdicts] == [[]]


# Each import as far as it goes without a driver; the outcome is the module's own words.
IMPORTS = """
import json
from importlib.metadata import version
results = {}
def attempt(name, action):
    try:
        results[name] = "ok: " + str(action())
    except BaseException as e:
        results[name] = f"{type(e).__module__}.{type(e).__name__}: {e}"
attempt("cupy", lambda: __import__("cupy").__version__)
attempt("cupy_device", lambda: __import__("cupy").cuda.runtime.getDeviceCount())
attempt("cupy_random", lambda: __import__("cupy").random.RandomState)
attempt("dask_cuda", lambda: version("dask-cuda") + " " + __import__("dask_cuda").__name__)
attempt("dask_cuda_cluster", lambda: __import__("dask_cuda").LocalCUDACluster.__name__)
attempt("numba_cuda", lambda: __import__("numba.cuda", fromlist=["cuda"]).is_available())
attempt("rmm", lambda: __import__("rmm").__name__)
attempt("pylibcudf", lambda: __import__("pylibcudf").__name__)
attempt("cudf", lambda: version("cudf-cu12") + " " + __import__("cudf").__name__)
attempt("cudf_series", lambda: __import__("cudf").Series([1, 2, 3]))
attempt("dask_cudf", lambda: __import__("dask_cudf").__name__)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def imports(rapids_image: str) -> dict[str, str]:
    return run_python(rapids_image, IMPORTS)


def test_cupy_imports_and_finds_no_driver(imports: dict[str, str]) -> None:
    assert imports["cupy"] == f"ok: {CONFIG.versions['cupy']}"
    assert imports["cupy_random"].startswith("ok: ")
    assert imports["cupy_device"].startswith("cupy_backends.cuda.api.runtime.CUDARuntimeError: "), imports
    assert "cudaErrorInsufficientDriver" in imports["cupy_device"], imports


def test_dask_cuda_and_numba_cuda_import(imports: dict[str, str]) -> None:
    assert imports["dask_cuda"] == f"ok: {CONFIG.versions['dask_cuda']} dask_cuda"
    assert imports["dask_cuda_cluster"] == "ok: LocalCUDACluster"
    assert imports["numba_cuda"] == "ok: False"  # no GPU: is_available() says so, raises nothing


def test_cudf_imports_and_stops_at_its_driver_check(imports: dict[str, str]) -> None:
    assert imports["rmm"] == "ok: rmm"
    assert imports["pylibcudf"] == "ok: pylibcudf"
    assert imports["cudf"] == f"ok: {CONFIG.versions['cudf']} cudf"
    assert imports["dask_cudf"] == "ok: dask_cudf"
    # The first GPU allocation looks for the driver library, which only the host provides.
    assert imports["cudf_series"] == (
        "cuda.pathfinder._dynamic_libs.load_dl_common.DynamicLibNotFoundError: "
        '"cuda" is an NVIDIA driver library and can only be found via system search. '
        "Ensure the NVIDIA display driver is installed."
    ), imports


# The kernels cupy and numba-cuda compile at run time, compiled without a GPU (NVRTC and NVVM
# need none): the CUDA headers and libdevice that strip.sh and strip-cuda.sh keep suffice.
COMPILERS = r"""
import json
import cupy._core.core as core
from cupy.cuda import compiler
from numba import cuda, float32
source = '''
#include <cupy/complex.cuh>
#include <cuda_fp16.h>
#include <cub/block/block_reduce.cuh>
extern "C" __global__ void total(const __half* x, float* out) {
    typedef cub::BlockReduce<float, 128> Reduce;
    __shared__ typename Reduce::TempStorage scratch;
    float sum = Reduce(scratch).Sum(__half2float(x[threadIdx.x]));
    if (threadIdx.x == 0) *out = sum;
}
'''
# LTO-IR for sm_80: the one NVRTC path of cupy that asks the device nothing.
options = core.assemble_cupy_compiler_options(("-dlto",))
ltoir, _ = compiler.compile_using_nvrtc(source, options, arch="80", method="lto")
def axpy(out, a, x, y):
    i = cuda.grid(1)
    out[i] = a * x[i] + y[i]
ptx, _ = cuda.compile_ptx(axpy, (float32[:], float32, float32[:], float32[:]), cc=(8, 0))
print(json.dumps({"cupy": len(ltoir) > 0, "numba": ".entry" in ptx}))
"""


def test_runtime_compilers_find_their_headers(rapids_image: str) -> None:
    assert run_python(rapids_image, COMPILERS) == {"cupy": True, "numba": True}


@pytest.fixture(scope="module")
def cluster(rapids_image: str) -> Iterator[tuple[str, str]]:
    """A scheduler and one worker (GPU_WORKER=auto: no GPU here, so `dask worker`)."""
    port, dashboard = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    containers: list[Container] = []
    try:
        for env in (
            {"PORT": str(port), "DASHBOARD_PORT": str(dashboard)},
            {"WORKER": "true", "DASK_SCHEDULER_ADDRESS": address, "WORKER_NTHREADS": "1"},
        ):
            containers.append(
                docker.run(
                    rapids_image,
                    platform=RAPIDS_PLATFORM,
                    envs={"HOST": "127.0.0.1", **env},
                    detach=True,
                    networks=["host"],
                )
            )
        yield address, f"http://127.0.0.1:{dashboard}"
    finally:
        for container in containers:
            container.remove(force=True)


# The client runs in the image too: the image's dask (RAPIDS' pin) differs from the test venv's.
COMPUTE = """
import json, urllib.request, dask.array as da
from distributed import Client
with Client("{address}", timeout=120) as client:
    client.wait_for_workers(1, timeout=120)
    total = int(da.ones((1000, 1000), chunks=(100, 100)).sum().compute())
    workers = [w["type"] for w in client.scheduler_info()["workers"].values()]
with urllib.request.urlopen("{dashboard}/health", timeout=10) as response:
    health = response.read().decode()
print(json.dumps({{"total": total, "workers": len(workers), "health": health}}))
"""


def test_cpu_worker_computes_and_the_dashboard_answers(rapids_image: str, cluster: tuple[str, str]) -> None:
    address, dashboard = cluster
    code, output = run_once(
        rapids_image,
        RAPIDS_PLATFORM,
        command=["python", "-c", COMPUTE.format(address=address, dashboard=dashboard)],
        networks=["host"],
    )
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1]) == {"total": 1_000_000, "workers": 1, "health": "ok"}


def test_gpu_worker_without_a_gpu_fails_in_one_line(rapids_image: str) -> None:
    code, output = run_once(
        rapids_image,
        RAPIDS_PLATFORM,
        env={"WORKER": "true", "GPU_WORKER": "true", "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:1"},
    )
    assert code == 1
    assert output.strip().splitlines() == [
        "entrypoint: error: GPU_WORKER=true but the container sees no NVIDIA GPU (no /dev/nvidia0): "
        "run it with --gpus, or request nvidia.com/gpu in Kubernetes"
    ]


@pytest.mark.gpu
def test_cupy_sum_through_a_dask_cuda_worker(rapids_image: str) -> None:
    """Where a GPU and the NVIDIA container toolkit are: a `dask cuda worker` (GPU_WORKER=auto
    picks it) sums a cupy-backed dask array."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    script = (
        "import cupy, dask.array as da; from distributed import Client\n"
        f"with Client('{address}', timeout=120) as c:\n"
        "    c.wait_for_workers(1, timeout=120)\n"
        "    x = da.ones((4000, 4000), chunks=(1000, 1000)).map_blocks(cupy.asarray)\n"
        "    print(int(x.sum().compute()), c.run(lambda: __import__('dask_cuda').__name__))\n"
    )
    scheduler = docker.run(rapids_image, envs={"HOST": "127.0.0.1", "PORT": str(port)}, detach=True, networks=["host"])
    worker = docker.run(
        rapids_image,
        envs={"HOST": "127.0.0.1", "WORKER": "true", "DASK_SCHEDULER_ADDRESS": address},
        detach=True,
        networks=["host"],
        gpus="all",
    )
    try:
        output = docker.run(rapids_image, ["python", "-c", script], remove=True, networks=["host"], gpus="all")
        assert str(output).split()[0] == "16000000"
        assert "starting GPU worker (dask cuda worker)" in docker.logs(worker)
    finally:
        for container in (worker, scheduler):
            container.remove(force=True)
