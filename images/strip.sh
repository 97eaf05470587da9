#!/bin/sh
# Remove what a running Dask scheduler or worker never reads, from the Python trees given
# (site-packages, dist-packages, a venv, the standard library).
# Shared by every image; bind-mounted into the build, so it never lands in a layer itself.
# usage: strip.sh DIR...
set -eu

for tree in "$@"; do
    [ -d "$tree" ] || continue
    # Test suites shipped inside packages (dask, distributed, numpy, tornado ...) and the
    # standard library's own; numpy.testing stays (some libraries import it at run time),
    # with the one module of numpy's own tests that it imports.
    find "$tree" -depth -type d \( -name tests -o -name test -o -name idle_test \) \
        ! -path '*/numpy/testing*' ! -path '*/numpy/_core/tests' -exec rm -rf {} +
    find "$tree" -path '*/numpy/_core/tests/*' ! -name __pycache__ ! -name '_natype.*' ! -name '__init__.*' \
        -prune -exec rm -rf {} +
    # Extension modules only numpy's tests load (_simd alone is 2.9 MB), and the texts of
    # help() topics.
    find "$tree" -path '*/numpy/_core/*' \( -name '_simd.*.so' -o -name '_*_tests.*.so' \) -type f -delete
    find "$tree" -depth -type d -name pydoc_data -exec rm -rf {} +
    # Build-time-only parts: C headers, Fortran wrapper generator, type stubs, installers.
    find "$tree" -depth -type d \( -path '*/numpy/_core/include' -o -path '*/numpy/f2py' \
        -o -path '*/numpy/_pyinstaller' -o -name ensurepip -o -name lib2to3 -o -name idlelib \
        -o -name turtledemo \) -exec rm -rf {} +
    # C headers that CUDA wheels ship for compiling kernels at run time (NVRTC, numba-cuda:
    # nvidia/*/include, cupy's include tree) stay; images/rapids/strip-cuda.sh removes the rest.
    find "$tree" \( -name '*.pyi' -o -name '*.c' -o -name '*.pxd' \
        -o \( -name '*.h' ! -path '*/nvidia/*/include/*' ! -path '*/cupy/_core/include/*' \) \) -type f -delete
    # Bokeh's TypeScript compiler, ES-module sources and unminified bundles serve custom
    # extensions and debugging only; the dashboard loads the minified bundles.
    find "$tree" -type d -path '*/bokeh/server/static/js' | while read -r static; do
        rm -rf "${static:?}/lib" "${static:?}/compiler.js"
        for bundle in "$static"/*.min.js; do
            [ -e "$bundle" ] && rm -f "${bundle%.min.js}.js"
        done
        find "$static" -name '*.map' -delete
    done
done
