"""The image contract: the default image (pure)."""

import sys
from importlib import metadata

from buildtools.cluster import contract
from buildtools.images.config import load_image

IMAGE = "registry.example:5000/minimaldask/debian:2026.8.0"


def test_default_image_is_the_tag_of_the_clients_distributed_and_python_minor() -> None:
    version = metadata.version("distributed")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    # The tag CI publishes per Python minor: the first of the Debian image's tag templates.
    tag = load_image("debian").tags[0].format(dask=version, python=python)
    assert tag == f"{version}-py{python}"
    assert contract.DEFAULT_REGISTRY == "ghcr.io/minimaldask"
    assert contract.default_image() == f"ghcr.io/minimaldask/minimaldask/debian:{tag}"
    assert contract.default_image(registry="127.0.0.1:5000/") == f"127.0.0.1:5000/minimaldask/debian:{tag}"
