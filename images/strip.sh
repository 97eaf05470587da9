#!/bin/sh
# Remove what a running Dask scheduler or worker never reads, from the Python trees given.
# Shared by every image; bind-mounted into the build, so it never lands in a layer itself.
# usage: strip.sh DIR...
set -eu

for tree in "$@"; do
    [ -d "$tree" ] || continue
    # Test suites shipped inside packages (dask, distributed, numpy, tornado ...).
    find "$tree" -depth -type d \( -name tests -o -name testing -o -name test \) -path '*-packages/*' \
        ! -path '*/numpy/testing' -exec rm -rf {} +
    # Bokeh's TypeScript compiler, ES-module sources and unminified bundles serve custom
    # extensions and debugging only; the dashboard loads the minified bundles.
    for static in "$tree"/lib/python3*/site-packages/bokeh/server/static/js; do
        [ -d "$static" ] || continue
        rm -rf "${static:?}/lib" "${static:?}/compiler.js"
        for bundle in "$static"/*.min.js; do
            rm -f "${bundle%.min.js}.js"
        done
        find "$static" -name '*.map' -delete
    done
    find "$tree" -name '*.pyi' -delete
done
