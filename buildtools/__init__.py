"""minimaldask: minimal multi-arch Dask images, and Dask clusters on Kubernetes from them."""

from buildtools.deploy import DaskCluster, delete_dask_cluster, prepull_images, start_dask_cluster

__all__ = ["DaskCluster", "delete_dask_cluster", "prepull_images", "start_dask_cluster"]
