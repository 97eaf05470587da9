# shellcheck shell=sh disable=SC2154  # $cache, $registry, ...: set by env/k8s-node.sh, which sources this
# What the node needs before anything starts: root, the Kubernetes binaries, the tools, the
# local registry, CoreDNS and the pause image; each built once into $cache.

prerequisites() {
    [ "$(id -u)" = 0 ] || die "a real node needs root (kubelet, containerd, iptables)"
    sh "$here/k8s-build.sh" >&2
    [ -x "$cni_bin/bridge" ] || apt_install containernetworking-plugins
    for tool in containerd containerd-shim-runc-v2 ctr runc iptables ip setsid curl go; do
        command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (run env/bootstrap.sh engine)"
    done
    curl -fsS --max-time 3 "http://$registry/v2/" >/dev/null 2>&1 ||
        die "registry http://$registry does not answer (run env/bootstrap.sh registry)"
    build_coredns
    pause_image_ready
}

# Static binaries from the Go module proxy only, with the caches under $cache.
go_env() {
    export GOCACHE="$cache/go/cache" GOMODCACHE="$cache/go/mod" GOTOOLCHAIN=local CGO_ENABLED=0 \
        GOFLAGS=-buildvcs=false
}

build_coredns() {
    [ -x "$coredns_bin" ] && return 0
    say "building CoreDNS $COREDNS_VERSION from the Go module proxy (a few minutes)"
    mkdir -p "${coredns_bin%/*}"
    (go_env && cd "${coredns_bin%/*}" && GOBIN="${coredns_bin%/*}/.gobin" go install -p 2 -trimpath \
        -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION") >&2 || die "CoreDNS build failed"
    mv -f "${coredns_bin%/*}/.gobin/coredns" "$coredns_bin"
}

# The sandbox ("pause") image: env/node/pause.go built static, imported by docker and pushed
# to the local registry (nothing is pulled from the internet).
pause_image_ready() {
    if curl -fsS --max-time 3 -o /dev/null \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$registry/v2/pause/manifests/3.10"; then
        return 0
    fi
    if ! docker info >/dev/null 2>&1; then
        die "$pause_image is missing and no Docker engine runs to build it (env/bootstrap.sh engine)"
    fi
    say "building $pause_image"
    mkdir -p "$cache/pause/root"
    # Built from $cache/pause, outside any Go module: the file alone is the program.
    (go_env && cd "$cache/pause" && go build -trimpath -ldflags "-s -w" -o "$cache/pause/root/pause" \
        "$here/node/pause.go") >&2 || die "pause build failed"
    cp "$cache/pause/root/pause" "$pause_bin"
    tar -C "$cache/pause/root" -cf "$cache/pause/pause.tar" pause
    docker import --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' \
        "$cache/pause/pause.tar" "$pause_image" >&2 || die "docker import of the pause image failed"
    docker push -q "$pause_image" >&2 || die "docker push $pause_image failed"
}
