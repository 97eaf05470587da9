"""minimaldask: minimal multi-arch Dask images, and Dask clusters on Kubernetes from them."""
