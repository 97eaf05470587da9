#!/bin/sh
# Build, once, the binaries of a real Kubernetes control plane for the tests:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet,
# kube-proxy, kwok, kwokctl and etcd, from Go modules only (the Go module proxy
# is the only source of code these machines reach).
#
# Usage: env/k8s-build.sh            build what is missing, print the bin dir
#        env/k8s-build.sh --bin-dir  only print the bin dir (no build)
#
# Versions: env/versions.env (the one place they are pinned).
# Output:   $MINIMALDASK_CACHE/k8s/$KUBERNETES_VERSION/bin/ (default: env/defaults.env)
# Go caches (GOCACHE, GOMODCACHE) live under the same cache dir, so rebuilds
# after a version bump are incremental. A second run with everything in place
# only prints "k8s binaries cached at DIR".
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091 # plain KEY=VALUE pins, nothing to follow
. "$here/versions.env"
# shellcheck source=env/defaults.sh
. "$here/defaults.sh"
tag=k8s-build
# shellcheck source=env/lib.sh
. "$here/lib.sh"

cache=$MINIMALDASK_CACHE
k8s_dir=$cache/k8s/$KUBERNETES_VERSION
bin=$k8s_dir/bin
stamps=$k8s_dir/stamps

k8s_bins="kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy"
all_bins="$k8s_bins kwok kwokctl etcd"

if [ "${1:-}" = "--bin-dir" ]; then
    echo "$bin"
    exit 0
fi

# The version a binary must have been built at (recorded in stamps/NAME).
want_version() {
    case $1 in
        kwok | kwokctl) echo "$KWOK_VERSION" ;;
        etcd) echo "$ETCD_VERSION" ;;
        *) echo "$KUBERNETES_VERSION" ;;
    esac
}

is_cached() {
    [ -x "$bin/$1" ] && [ -f "$stamps/$1" ] &&
        [ "$(cat "$stamps/$1")" = "$(want_version "$1")" ]
}

all_cached() {
    for b in $all_bins; do
        is_cached "$b" || return 1
    done
}

if all_cached; then
    echo "k8s binaries cached at $bin"
    exit 0
fi

# One build at a time per cache (parallel test sessions may call this).
mkdir -p "$cache/k8s"
if [ -z "${MINIMALDASK_K8S_BUILD_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    export MINIMALDASK_K8S_BUILD_LOCKED=1
    run_locked 3600 "$cache/k8s/.build.lock" sh "$0" "$@"
fi
if all_cached; then # built by whoever held the lock before us
    echo "k8s binaries cached at $bin"
    exit 0
fi

command -v go >/dev/null 2>&1 || {
    echo "k8s-build: 'go' not found on PATH" >&2
    exit 1
}

export GOCACHE="$cache/go/cache"
export GOMODCACHE="$cache/go/mod"
export GOTOOLCHAIN=local # never download a Go toolchain
export CGO_ENABLED=0     # static binaries, as upstream ships them
export GOFLAGS=-buildvcs=false # ignore a caller's GOFLAGS (e.g. -mod=vendor)
mkdir -p "$bin" "$stamps" "$GOCACHE" "$GOMODCACHE"

total_start=$(date +%s)
built=""

# build NAME CMD...: run CMD (which writes $bin/.NAME.tmp), then install it.
build() {
    name=$1
    shift
    if is_cached "$name"; then
        echo "k8s-build: $name $(want_version "$name") already cached"
        return 0
    fi
    echo "k8s-build: building $name $(want_version "$name") ..."
    start=$(date +%s)
    rm -f "$bin/.$name.tmp"
    "$@"
    mv -f "$bin/.$name.tmp" "$bin/$name"
    want_version "$name" >"$stamps/$name"
    end=$(date +%s)
    echo "k8s-build: built $name in $((end - start)) s ($(du -h "$bin/$name" | cut -f1))"
    built="$built $name"
}

# --- Kubernetes ------------------------------------------------------------
# `go install k8s.io/kubernetes/cmd/...@v1.N.P` is refused: k8s.io/kubernetes
# requires its staging modules (k8s.io/api, ...) at v0.0.0 and replaces them by
# ./staging/src/... . A wrapper module requires k8s.io/kubernetes and replaces
# every staging module by its published v0.N.P instead.
k8s_mod_dir=$k8s_dir/src/kubernetes
prepare_k8s_module() {
    [ -f "$k8s_mod_dir/.ready" ] && return 0
    echo "k8s-build: preparing wrapper module for k8s.io/kubernetes $KUBERNETES_VERSION"
    rm -rf "$k8s_mod_dir"
    mkdir -p "$k8s_mod_dir"
    staging_version=v0.${KUBERNETES_VERSION#v1.}
    upstream_mod=$(cd "$k8s_mod_dir" &&
        go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
        sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    [ -f "$upstream_mod" ] || {
        echo "k8s-build: cannot find go.mod of k8s.io/kubernetes@$KUBERNETES_VERSION" >&2
        exit 1
    }
    go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_mod")
    godebug_line=$(grep '^godebug ' "$upstream_mod" || true)
    {
        echo "module minimaldask.local/k8s-build"
        echo
        echo "go $go_line"
        [ -z "$godebug_line" ] || printf '\n%s\n' "$godebug_line"
        echo
        echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
        echo
        echo "replace ("
        sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*$#\1#p' "$upstream_mod" |
            while read -r m; do
                printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"
            done
        echo ")"
    } >"$k8s_mod_dir/go.mod"
    pkgs=""
    for b in $k8s_bins; do
        pkgs="$pkgs k8s.io/kubernetes/cmd/$b@$KUBERNETES_VERSION"
    done
    # shellcheck disable=SC2086 # word splitting of $pkgs is intended
    (cd "$k8s_mod_dir" && go get $pkgs)
    touch "$k8s_mod_dir/.ready"
}

k8s_minor=${KUBERNETES_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k8s_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags="$k8s_ldflags -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1"
    k8s_ldflags="$k8s_ldflags -X $p.gitMinor=$k8s_minor -X $p.gitTreeState=clean"
    k8s_ldflags="$k8s_ldflags -X $p.buildDate=$build_date"
done

go_build_k8s() {
    (cd "$k8s_mod_dir" &&
        go build -p 2 -trimpath -ldflags "$k8s_ldflags" \
            -o "$bin/.$name.tmp" "k8s.io/kubernetes/cmd/$name")
}

need_k8s=""
for b in $k8s_bins; do
    is_cached "$b" || need_k8s=1
done
[ -z "$need_k8s" ] || prepare_k8s_module
for b in $k8s_bins; do
    build "$b" go_build_k8s
done

# --- kwok, kwokctl ---------------------------------------------------------
go_install_kwok() {
    gobin=$k8s_dir/src/kwok-bin
    mkdir -p "$gobin"
    (cd "$gobin" && GOBIN="$gobin" go install -p 2 -trimpath -ldflags "-s -w" \
        "sigs.k8s.io/kwok/cmd/$name@$KWOK_VERSION")
    mv -f "$gobin/$name" "$bin/.$name.tmp"
}
build kwok go_install_kwok
build kwokctl go_install_kwok

# --- etcd ------------------------------------------------------------------
# go.etcd.io/etcd/server/v3 (whose main package is the etcd binary) replaces
# its sibling modules by relative paths, so `go install ...@v3.5.x` is refused
# too; as a dependency of a wrapper module, those replaces are ignored and the
# published versions it requires are used.
etcd_mod_dir=$k8s_dir/src/etcd
go_build_etcd() {
    if [ ! -f "$etcd_mod_dir/.ready-$ETCD_VERSION" ]; then
        rm -rf "$etcd_mod_dir"
        mkdir -p "$etcd_mod_dir"
        printf 'module minimaldask.local/etcd-build\n\ngo 1.24.0\n' >"$etcd_mod_dir/go.mod"
        (cd "$etcd_mod_dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
        touch "$etcd_mod_dir/.ready-$ETCD_VERSION"
    fi
    (cd "$etcd_mod_dir" &&
        go build -p 2 -trimpath \
            -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" \
            -o "$bin/.etcd.tmp" go.etcd.io/etcd/server/v3)
}
build etcd go_build_etcd

total_end=$(date +%s)
if [ -n "$built" ]; then
    echo "k8s-build: built$built in $((total_end - total_start)) s in all"
fi
all_cached || {
    echo "k8s-build: some binaries are missing in $bin" >&2
    exit 1
}
echo "k8s binaries cached at $bin"
