"""The dataframe flavour of the Debian image in real containers (arm64 under QEMU)."""

from __future__ import annotations

import pytest
from python_on_whales import docker

from buildtools.images.config import load_image
from tests.helpers.host import platform_env

pytestmark = pytest.mark.images

CONFIG = load_image("debian-dataframe")
COMPUTE = (
    "import dask, dask.dataframe as dd, pandas as pd, pyarrow; "
    "df = dd.from_pandas(pd.DataFrame({'x': range(1000), 'k': [i % 3 for i in range(1000)]}), npartitions=4); "
    "print(pyarrow.__version__, int(df.x.sum().compute()), df.groupby('k').x.count().compute().to_dict())"
)


@pytest.mark.parametrize("platform", CONFIG.platforms)
def test_dask_dataframe_computes(dataframe_image: str, platform: str) -> None:
    output = docker.run(
        dataframe_image,
        ["python", "-c", COMPUTE],
        platform=platform,
        remove=True,
        networks=["none"],
        envs=platform_env(platform),
    )
    assert str(output).split(" ", 2) == [CONFIG.versions["pyarrow"], "499500", "{0: 334, 1: 333, 2: 333}"]


def test_the_array_image_stays_without_pandas(debian_image: str) -> None:
    output = docker.run(
        debian_image,
        ["python", "-c", "import importlib.util as u; print(u.find_spec('pandas'))"],
        remove=True,
        networks=["none"],
    )
    assert str(output).strip() == "None"
