"""minimaldask: minimal multi-arch Dask images, and Dask clusters on Kubernetes from them.

Two flows, one subpackage each: `buildtools.images` (image.toml -> plan -> build -> sizes ->
budgets -> report) and `buildtools.cluster` (spec -> manifests -> apply -> waits -> handle).
They share only `errors`, `settings` and `platforms`; `cli` sits on top of both. The public
API below is imported on first use, so that building images never loads the Kubernetes client.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from buildtools.cluster.deploy import DaskCluster, delete_dask_cluster, prepull_images, start_dask_cluster

__all__ = ["DaskCluster", "delete_dask_cluster", "prepull_images", "start_dask_cluster"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'buildtools' has no attribute {name!r}")
    return getattr(import_module("buildtools.cluster.deploy"), name)
