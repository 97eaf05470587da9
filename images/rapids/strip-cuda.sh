#!/bin/sh
# Removes from the RAPIDS image's site-packages what a CUDA worker never reads; images/strip.sh
# has already removed tests, stubs and the headers no runtime compiler reads.
# Bind-mounted into the build, like strip.sh. usage: strip-cuda.sh SITE_PACKAGES
set -eu
site=$1
cd "$site"

# C++ development files: headers and CMake packages for building against libcudf, librmm,
# libkvikio, nvcomp, cuFile, nvJitLink and NVRTC; command-line tools. The headers of the CUDA
# runtime, of CCCL and of cupy stay: cupy and numba-cuda compile kernels against them at run time.
rm -rf libcudf/include librmm/include libkvikio/include libkvikio/share \
    nvidia/libnvcomp/include nvidia/libnvcomp/bin nvidia/cufile/include nvidia/nvjitlink/include \
    nvidia/cuda_nvrtc/include
find . -depth -type d -name cmake -path '*/lib*/cmake' -exec rm -rf {} +
find . \( -name '*.a' -o -name '*.pyx' -o -name '*.pxi' -o -name '*.cc' -o -name '*.cpp' \) -type f -delete
# NVRTC's alternative build (libnvrtc.alt, for programs that must not share NVRTC's C++
# runtime symbols): cupy, cudf and numba-cuda load libnvrtc.so.12.
rm -f nvidia/cuda_nvrtc/lib/libnvrtc.alt.so.* nvidia/cuda_nvrtc/lib/libnvrtc-builtins.alt.so.*
# pyarrow: Arrow Flight (RPC), which cudf and Dask never import (pyarrow's core links
# Substrait, which stays), and the C++ sources and headers of pyarrow's own build.
rm -f pyarrow/libarrow_flight.so.* pyarrow/libarrow_python_flight.so* pyarrow/_flight.*.so
rm -rf pyarrow/include pyarrow/src
