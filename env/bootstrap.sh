#!/bin/sh
# Provision a build-and-test machine: a Docker engine with buildx and the containerd
# image store, QEMU binfmt handlers for arm64 and arm/v7, and a local registry on 127.0.0.1.
# Idempotent: whatever already works is reused and nothing is installed twice.
#
# usage: env/bootstrap.sh [all|engine|binfmt|mirror_tools|registry|status]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=env/defaults.sh
. "$here/defaults.sh"

cache=$MINIMALDASK_CACHE
registry=$MINIMALDASK_REGISTRY
prefix=$MINIMALDASK_ENGINE_PREFIX
logs=$cache/logs
# Debian unstable carries the engine we need; its .debs need only libc6 >= 2.34.
engine_packages="docker.io docker-cli containerd docker-buildx tini-static"

tag=bootstrap
apt_log=$logs/apt.log
# shellcheck source=env/lib.sh
. "$here/lib.sh"

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

add_sid_source() {  # Debian unstable, pinned low: only packages asked for by name come from it
    sources=/etc/apt/sources.list.d/minimaldask-sid.sources
    if [ ! -f "$sources" ]; then
        printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$MINIMALDASK_DEBIAN_MIRROR" >"$sources"
        # A low pin so that sid never upgrades anything on this host by accident.
        printf 'Package: *\nPin: release n=sid\nPin-Priority: 50\n' >/etc/apt/preferences.d/minimaldask-sid
    fi
    apt-get update -qq >"$logs/apt.log" 2>&1 || die "apt-get update failed; see $logs/apt.log"
}

install_engine() {
    [ -x "$prefix/usr/sbin/dockerd" ] && return 0
    is_debian || die "no Docker engine is running and this is not a Debian host: install Docker Engine >= 28 with buildx and start it"
    [ "$(id -u)" = 0 ] || die "no Docker engine is running; installing one needs root (sudo make ...)"
    say "installing Docker Engine 28 from Debian unstable .debs into $prefix (libc stays bookworm's)"
    apt_install runc iptables ca-certificates
    add_sid_source
    debs=$cache/debs
    mkdir -p "$debs" "$prefix"
    for pkg in $engine_packages; do
        (cd "$debs" && apt-get download -qq "$pkg/sid" >>"$logs/apt.log" 2>&1) ||
            die "could not download $pkg from Debian unstable; see $logs/apt.log"
    done
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
    mkdir -p /usr/local/lib/docker/cli-plugins "$MINIMALDASK_STATE"
    # The engine, and everything it writes (/var/lib/docker ...), are the set-up's to remove.
    : >"$MINIMALDASK_STATE/engine-installed"
    link "$prefix/usr/libexec/docker/cli-plugins/docker-buildx" /usr/local/lib/docker/cli-plugins/docker-buildx
    for tool in usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/docker-init usr/bin/containerd \
        usr/bin/containerd-shim-runc-v2 usr/bin/ctr; do
        link "$prefix/$tool" "/usr/local/bin/$(basename "$tool")"
    done
    command -v docker >/dev/null 2>&1 || link "$prefix/usr/bin/docker" /usr/local/bin/docker
}

link() {  # link TARGET NAME: a symlink that uninstall removes (recorded, unless NAME exists)
    [ -e "$2" ] && return 0
    ln -s "$1" "$2"
    echo "$2" >>"$MINIMALDASK_STATE/links"
}

start_engine() {
    mkdir -p "$prefix/etc"
    # Published ports default to 127.0.0.1: nothing a test starts is reachable from outside.
    printf '{"features": {"containerd-snapshotter": true}, "ip": "127.0.0.1"}\n' >"$prefix/etc/daemon.json"
    say "starting dockerd (log: $logs/dockerd.log)"
    nohup dockerd --config-file "$prefix/etc/daemon.json" >"$logs/dockerd.log" 2>&1 &
    mkdir -p "$MINIMALDASK_STATE"
    echo $! >"$MINIMALDASK_STATE/dockerd.pid"
    wait_for 60 "dockerd" docker info ||
        die "dockerd did not answer within 60 s; last log lines: $(tail -n 3 "$logs/dockerd.log" | tr '\n' ' ')"
    say "dockerd is up"
}

engine() {
    if ! engine_answers; then
        command -v dockerd >/dev/null 2>&1 || install_engine
        start_engine
    fi
    check_engine
}

# Our handlers: QEMU from Debian unstable (static, no library needs). Bookworm's QEMU 7.2
# emulates arm64 pointer authentication so slowly that Python imports took 71 s instead
# of 7 s, and Debian trixie's binaries use it in every function.
qemu_dir=${prefix%/*}/qemu
qemu_arches="aarch64 arm"
binfmt_mask=ffffffffffffff00fffffffffffffffffeffffff

# Registered as qemu-ARCH, the name Debian's qemu-user-static and Docker's binfmt installer
# use: mmdebstrap looks for exactly that entry and its F flag, and without it demands a
# /usr/bin/qemu-ARCH-static to copy into the chroot.
binfmt_entry() { echo "/proc/sys/fs/binfmt_misc/qemu-$1"; }

binfmt_ours() {  # enabled, with our interpreter and the F (fix binary) flag
    entry=$(binfmt_entry "$1")
    grep -q '^enabled' "$entry" 2>/dev/null &&
        grep -qx "interpreter $qemu_dir/qemu-$1" "$entry" &&
        grep -q '^flags: [A-Z]*F' "$entry"
}

binfmt_magic() {  # the ELF header that identifies ARCH's executables
    case $1 in
    aarch64) echo 7f454c460201010000000000000000000200b700 ;;
    arm) echo 7f454c4601010100000000000000000002002800 ;;
    esac
}

hex_escape() { printf '%s' "$1" | sed 's/../\\x&/g'; }

register_handler() {  # register_handler ARCH: (re)register qemu-ARCH with flags F (fix binary) P
    entry=$(binfmt_entry "$1")
    # Any other handler of that name (e.g. an older QEMU) steps aside.
    if [ -e "$entry" ]; then echo -1 >"$entry"; fi
    printf ':qemu-%s:M::%s:%s:%s:FP\n' "$1" "$(hex_escape "$(binfmt_magic "$1")")" "$(hex_escape "$binfmt_mask")" \
        "$qemu_dir/qemu-$1" >/proc/sys/fs/binfmt_misc/register
}

install_qemu() {
    is_debian || die "no QEMU binfmt handlers for linux/arm64 and linux/arm/v7: install qemu-user-static, or run 'docker run --privileged tonistiigi/binfmt --install arm64,arm'"
    add_sid_source
    debs=$cache/debs-qemu
    mkdir -p "$debs" "$qemu_dir"
    rm -f "$debs"/qemu-user_*.deb
    (cd "$debs" && apt-get download -qq qemu-user/sid >>"$logs/apt.log" 2>&1) ||
        die "could not download qemu-user from Debian unstable; see $logs/apt.log"
    unpacked=$debs/unpacked
    rm -rf "$unpacked"
    for deb in "$debs"/qemu-user_*.deb; do dpkg-deb -x "$deb" "$unpacked"; done
    for binary in $qemu_arches; do cp "$unpacked/usr/bin/qemu-$binary" "$qemu_dir/qemu-$binary"; done
    rm -rf "$unpacked"
}

debian_arch_of() { case $1 in aarch64) echo arm64 ;; arm) echo armhf ;; esac; }
platform_of() { case $1 in aarch64) echo linux/arm64 ;; arm) echo linux/arm/v7 ;; esac; }

# runs_in_empty_chroot ARCH: arch-test's tiny static ARCH program runs in a chroot that holds
# nothing else, as in mmdebstrap's and buildx's containers: only the F flag makes that work.
runs_in_empty_chroot() {
    root=$(mktemp -d)
    cp "/usr/lib/arch-test/$(debian_arch_of "$1")" "$root/check"
    output=$(chroot "$root" /check 2>&1) || true
    rm -rf "$root"
    [ "$output" = ok ]
}

binfmt() {
    [ -f /proc/sys/fs/binfmt_misc/status ] ||
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
        die "cannot mount binfmt_misc: run on a host (or privileged container) that allows it"
    apt_install arch-test
    for arch in $qemu_arches; do
        binfmt_ours "$arch" && continue
        [ -x "$qemu_dir/qemu-$arch" ] || install_qemu
        register_handler "$arch"
        binfmt_ours "$arch" ||
            die "could not register a binfmt handler for qemu-$arch: the platform $(platform_of "$arch") cannot run; run as root on a host that allows binfmt_misc"
    done
    for arch in $qemu_arches; do
        runs_in_empty_chroot "$arch" ||
            die "a $(platform_of "$arch") program does not run in a chroot under $(binfmt_entry "$arch"): $output"
    done
    say "binfmt handlers for linux/arm64 and linux/arm/v7 work in chroots ($("$qemu_dir/qemu-aarch64" --version | head -n 1))"
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
    say "registry http://$registry is up"
}

status() {
    if engine_answers; then check_engine; else say "engine: not running"; fi
    if binfmt_ours aarch64 && binfmt_ours arm; then say "binfmt: registered"; else say "binfmt: missing"; fi
    if registry_answers; then say "registry: http://$registry"; else say "registry: not running"; fi
}

mkdir -p "$logs"
case "${1:-all}" in
all) engine; binfmt; mirror_tools; registry ;;
engine | binfmt | mirror_tools | registry | status) "$1" ;;
*) die "unknown step '$1' (expected: all, engine, binfmt, mirror_tools, registry, status)" ;;
esac
