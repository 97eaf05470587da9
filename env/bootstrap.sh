#!/bin/sh
# Provision a build-and-test machine: a Docker engine with buildx and the containerd
# image store, QEMU binfmt handlers for arm64 and arm/v7, and a local registry on 127.0.0.1.
# Idempotent: whatever already works is reused and nothing is installed twice.
#
# usage: env/bootstrap.sh [all|engine|binfmt|mirror_tools|registry|status]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# Defaults from env/defaults.env, unless the caller's environment already sets them.
# shellcheck disable=SC2034  # value is read by the eval below
while IFS='=' read -r key value; do
    case $key in '' | \#*) continue ;; esac
    eval "[ -n \"\${$key:-}\" ] || $key=\$value"
done <"$here/defaults.env"

cache=$MINIMALDASK_CACHE
registry=$MINIMALDASK_REGISTRY
prefix=$MINIMALDASK_ENGINE_PREFIX
logs=$cache/logs
# Debian unstable carries the engine we need; its .debs need only libc6 >= 2.34.
engine_packages="docker.io docker-cli containerd docker-buildx tini-static"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...
    seconds=$1 what=$2
    shift 2
    deadline=$(($(date +%s) + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.5
    done
    say "$what is up"
}

is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {  # install bookworm packages without letting their postinst start services
    missing=""
    for pkg in "$@"; do
        dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing="$missing $pkg"
    done
    [ -n "$missing" ] || return 0
    is_debian || die "cannot install$missing: not a Debian host; install them by hand"
    say "installing$missing"
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >"$logs/apt.log" 2>&1; then
        apt-get update -qq >>"$logs/apt.log" 2>&1
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >>"$logs/apt.log" 2>&1 ||
            { rm -f /usr/sbin/policy-rc.d; die "apt-get install$missing failed; see $logs/apt.log"; }
    fi
    rm -f /usr/sbin/policy-rc.d
}

engine_answers() { docker info >/dev/null 2>&1; }

engine_has_containerd_store() {
    docker info --format '{{json .DriverStatus}}' 2>/dev/null | grep -q 'io.containerd.snapshotter'
}

check_engine() {
    docker buildx version >/dev/null 2>&1 ||
        die "docker buildx is missing: install the docker-buildx plugin (Debian: docker-buildx), then rerun"
    engine_has_containerd_store ||
        die "the Docker engine does not use the containerd image store (needed for multi-platform builds): set {\"features\":{\"containerd-snapshotter\":true}} in /etc/docker/daemon.json and restart dockerd"
    say "engine $(docker version --format '{{.Server.Version}}'), $(docker buildx version | cut -d' ' -f1,2), containerd image store"
}

install_engine() {
    [ -x "$prefix/usr/sbin/dockerd" ] && return 0
    is_debian || die "no Docker engine is running and this is not a Debian host: install Docker Engine >= 28 with buildx and start it"
    [ "$(id -u)" = 0 ] || die "no Docker engine is running; installing one needs root (sudo make ...)"
    say "installing Docker Engine 28 from Debian unstable .debs into $prefix (libc stays bookworm's)"
    apt_install runc iptables ca-certificates
    sources=/etc/apt/sources.list.d/minimaldask-sid.sources
    if [ ! -f "$sources" ]; then
        printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$MINIMALDASK_DEBIAN_MIRROR" >"$sources"
        # A low pin so that sid never upgrades anything on this host by accident.
        printf 'Package: *\nPin: release n=sid\nPin-Priority: 50\n' >/etc/apt/preferences.d/minimaldask-sid
    fi
    apt-get update -qq >"$logs/apt.log" 2>&1 || die "apt-get update failed; see $logs/apt.log"
    debs=$cache/debs
    mkdir -p "$debs" "$prefix"
    for pkg in $engine_packages; do
        (cd "$debs" && apt-get download -qq "$pkg/sid" >>"$logs/apt.log" 2>&1) ||
            die "could not download $pkg from Debian unstable; see $logs/apt.log"
    done
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
    mkdir -p /usr/local/lib/docker/cli-plugins
    ln -sf "$prefix/usr/libexec/docker/cli-plugins/docker-buildx" /usr/local/lib/docker/cli-plugins/docker-buildx
    for tool in usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/docker-init usr/bin/containerd \
        usr/bin/containerd-shim-runc-v2 usr/bin/ctr; do
        ln -sf "$prefix/$tool" "/usr/local/bin/$(basename "$tool")"
    done
    command -v docker >/dev/null 2>&1 || ln -sf "$prefix/usr/bin/docker" /usr/local/bin/docker
}

start_engine() {
    mkdir -p "$prefix/etc"
    # Published ports default to 127.0.0.1: nothing a test starts is reachable from outside.
    printf '{"features": {"containerd-snapshotter": true}, "ip": "127.0.0.1"}\n' >"$prefix/etc/daemon.json"
    say "starting dockerd (log: $logs/dockerd.log)"
    nohup dockerd --config-file "$prefix/etc/daemon.json" >"$logs/dockerd.log" 2>&1 &
    wait_for 60 "dockerd" docker info ||
        die "dockerd did not answer within 60 s; last log lines: $(tail -n 3 "$logs/dockerd.log" | tr '\n' ' ')"
}

engine() {
    if ! engine_answers; then
        command -v dockerd >/dev/null 2>&1 || install_engine
        start_engine
    fi
    check_engine
}

binfmt_enabled() { grep -q '^enabled' "/proc/sys/fs/binfmt_misc/$1" 2>/dev/null; }

binfmt() {
    if binfmt_enabled qemu-aarch64 && binfmt_enabled qemu-arm; then
        say "binfmt handlers qemu-aarch64 and qemu-arm are registered"
        return 0
    fi
    apt_install qemu-user-static binfmt-support
    [ -f /proc/sys/fs/binfmt_misc/status ] ||
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
        die "cannot mount binfmt_misc: run on a host (or privileged container) that allows it"
    for handler in qemu-aarch64 qemu-arm; do
        update-binfmts --enable "$handler" >/dev/null 2>&1 || true
        binfmt_enabled "$handler" ||
            die "no binfmt handler $handler: install qemu-user-static and binfmt-support, or run 'docker run --privileged tonistiigi/binfmt --install arm64,arm'"
        grep -q '^flags: .*F' "/proc/sys/fs/binfmt_misc/$handler" ||
            die "binfmt handler $handler lacks the F flag: containers cannot use it; reinstall qemu-user-static"
    done
    say "binfmt handlers qemu-aarch64 and qemu-arm registered"
}

mirror_tools() {
    # mmdebstrap builds the offline base mirror; arch-test and gpg are what it uses to check
    # foreign architectures and the archive's signatures.
    apt_install mmdebstrap arch-test gpg uidmap
    say "mmdebstrap $(mmdebstrap --version | cut -d' ' -f2) for the base mirror"
}

registry_answers() { curl -fsS --max-time 2 "http://$registry/v2/" >/dev/null 2>&1; }

registry() {
    if registry_answers; then
        say "registry http://$registry is up"
        return 0
    fi
    apt_install docker-registry
    config=$cache/registry/config.yml
    mkdir -p "$cache/registry/data"
    cat >"$config" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $cache/registry/data
  delete:
    enabled: true
http:
  addr: $registry
EOF
    say "starting registry on $registry (log: $logs/registry.log)"
    nohup docker-registry serve "$config" >"$logs/registry.log" 2>&1 &
    wait_for 30 "registry http://$registry" registry_answers ||
        die "registry on $registry did not answer within 30 s; see $logs/registry.log"
}

status() {
    if engine_answers; then check_engine; else say "engine: not running"; fi
    if binfmt_enabled qemu-aarch64 && binfmt_enabled qemu-arm; then say "binfmt: registered"; else say "binfmt: missing"; fi
    if registry_answers; then say "registry: http://$registry"; else say "registry: not running"; fi
}

mkdir -p "$logs"
case "${1:-all}" in
all) engine; binfmt; mirror_tools; registry ;;
engine | binfmt | mirror_tools | registry | status) "$1" ;;
*) die "unknown step '$1' (expected: all, engine, binfmt, mirror_tools, registry, status)" ;;
esac
