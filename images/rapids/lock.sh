#!/bin/sh
# Writes images/rapids/requirements.txt: every wheel the RAPIDS image installs, pinned with the
# hashes of all its files (so one file serves linux/amd64 and linux/arm64), resolved by uv
# from the top-level pins in images/rapids/image.toml [versions]. `make lock-rapids` runs it.
# The Dockerfile installs this list with --no-deps --require-hashes: nothing is resolved at
# build time, and what is left out here is never downloaded.
# usage: lock.sh PYTHON UV   (PYTHON: the project's venv Python, with buildtools installed)
set -eu

python=$1
uv=$2
here=$(cd "$(dirname "$0")" && pwd)

# The pins as build arguments (CUDF_VERSION=26.10.2 ...), the names the Dockerfile uses.
eval "$("$python" -c 'from buildtools.images.config import load_image
config = load_image("rapids")
for key, value in config.build_args(config.default_python).items(): print(f"{key}={value}")')"

# Left out, with the reason (tests/images/test_rapids_container.py checks that no library
# in the image links against them):
#   cuBLAS, cuFFT, cuSOLVER, cuSPARSE: cupy's math libraries (cupy.linalg and matrix
#     products, cupy.fft, cupyx.scipy.sparse), about 2 GB installed; cudf, dask-cudf and
#     dask-cuda load none of them, and cupy loads each only when such a function first runs.
#     cuRAND stays: cudf's groupby sample draws from cupy.random.RandomState, which uses it.
#   pillow, contourpy, narwhals, xyzservices: bokeh's, for features the Dask dashboard does
#     not use (the other images install bokeh without them too).
omit="nvidia-cublas-cu$CUDA_VERSION nvidia-cufft-cu$CUDA_VERSION nvidia-cusolver-cu$CUDA_VERSION nvidia-cusparse-cu$CUDA_VERSION pillow contourpy narwhals xyzservices"

compile() {  # compile ARCH OUTPUT
    flags=""
    for package in $omit; do flags="$flags --no-emit-package $package"; done
    # shellcheck disable=SC2086  # one flag per word
    printf '%s\n' \
        "cudf-cu$CUDA_VERSION==$CUDF_VERSION" \
        "dask-cudf-cu$CUDA_VERSION==$CUDF_VERSION" \
        "dask-cuda==$DASK_CUDA_VERSION" \
        "cupy-cuda${CUDA_VERSION}x==$CUPY_VERSION" \
        "dask==$DASK_VERSION" \
        "distributed==$DASK_VERSION" \
        "bokeh==$BOKEH_VERSION" |
        "$uv" pip compile - --quiet --generate-hashes --only-binary :all: --no-header \
            --python-version "$PYTHON_VERSION" --python-platform "$1-manylinux_2_28" $flags -o "$2"
}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
compile x86_64 "$scratch/amd64.txt"
compile aarch64 "$scratch/arm64.txt"
if ! cmp -s "$scratch/amd64.txt" "$scratch/arm64.txt"; then
    diff "$scratch/amd64.txt" "$scratch/arm64.txt" >&2 || true
    echo "lock.sh: linux/amd64 and linux/arm64 resolve to different wheels; one list cannot serve both" >&2
    exit 1
fi
{
    echo "# Written by images/rapids/lock.sh (make lock-rapids) from images/rapids/image.toml; do not edit."
    cat "$scratch/amd64.txt"
} >"$here/requirements.txt"
