#!/bin/sh
# Build, once, actionlint (the GitHub workflow linter) from the Go module proxy and
# print its version. tests/test_workflows.py runs it on .github/workflows/.
#
# Usage: env/lint-workflows.sh            build it if missing, print the version
#        env/lint-workflows.sh --bin      only print the binary's path (no build)
#
# Version: ACTIONLINT_VERSION in env/versions.env (the one place it is pinned).
# Output:  $MINIMALDASK_CACHE/bin/actionlint (default: env/defaults.env)
# Go caches (GOPATH, GOCACHE, GOMODCACHE) live under the same cache dir. A second run
# with the pinned version in place only prints the version.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091 # plain KEY=VALUE pins, nothing to follow
. "$here/versions.env"
: "${ACTIONLINT_VERSION:?is not set in env/versions.env}"
# shellcheck source=env/defaults.sh
. "$here/defaults.sh"

cache=$MINIMALDASK_CACHE
bin=$cache/bin
actionlint=$bin/actionlint

if [ "${1:-}" = "--bin" ]; then
    echo "$actionlint"
    exit 0
fi

installed_version() {
    [ -x "$actionlint" ] || return 0
    "$actionlint" -version 2>/dev/null | head -n 1
}

if [ "$(installed_version)" != "$ACTIONLINT_VERSION" ]; then
    command -v go >/dev/null 2>&1 || {
        echo "lint-workflows: 'go' not found on PATH" >&2
        exit 1
    }
    export GOPATH="$cache/go"
    export GOCACHE="$cache/go/cache"
    export GOMODCACHE="$cache/go/mod"
    export GOBIN="$bin"
    export GOTOOLCHAIN=local       # never download a Go toolchain
    export CGO_ENABLED=0           # a static binary
    export GOFLAGS=-buildvcs=false # ignore a caller's GOFLAGS (e.g. -mod=vendor)
    mkdir -p "$bin" "$GOCACHE" "$GOMODCACHE"
    echo "lint-workflows: building actionlint $ACTIONLINT_VERSION" >&2
    go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
    got=$(installed_version)
    [ "$got" = "$ACTIONLINT_VERSION" ] || {
        echo "lint-workflows: built actionlint reports version '$got', expected $ACTIONLINT_VERSION" >&2
        exit 1
    }
fi

echo "actionlint $(installed_version) at $actionlint"
