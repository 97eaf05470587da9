#!/bin/sh
# Undo the set-up (`make uninstall`): stop everything env/*.sh started (test nodes and control
# planes, the registry, and dockerd with its containerd if the set-up started them),
# unregister the QEMU binfmt handlers, remove what they installed (the engine and QEMU under
# /opt/minimaldask, the links and apt packages recorded in $MINIMALDASK_STATE, the Debian
# unstable source) and the caches. With KEEP_CACHE=1 the slow Kubernetes, CoreDNS and Go build caches stay.
#
# usage: env/uninstall.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
tag=uninstall
apt_log=${TMPDIR:-/tmp}/minimaldask-uninstall-apt.log
# shellcheck source=env/defaults.sh
. "$here/defaults.sh"
# shellcheck source=env/lib.sh
. "$here/lib.sh"

cache=$MINIMALDASK_CACHE
prefix=$MINIMALDASK_ENGINE_PREFIX
opt=${prefix%/*}
tmp=${TMPDIR:-/tmp}

[ "$(id -u)" = 0 ] || die "uninstall needs root (it stops daemons and removes packages)"

stop_all() {  # stop_all WHAT PATTERN: TERM, wait up to 20 s, then KILL
    pids=$(pids_running "$2")
    [ -n "$pids" ] || return 0
    say "stopping $1"
    # shellcheck disable=SC2086  # one argument per pid
    kill $pids 2>/dev/null || true
    i=0
    while [ -n "$(pids_running "$2")" ] && [ "$i" -lt 40 ]; do
        sleep 0.5
        i=$((i + 1))
    done
    pids=$(pids_running "$2")
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
}

# stop_each WHAT SCRIPT DIR: `SCRIPT down NAME` for every NAME/ in DIR.
stop_each() {
    for dir in "$3"/*/; do
        [ -d "$dir" ] || continue
        say "stopping the $1 $(basename "$dir")"
        sh "$here/$2" down "$(basename "$dir")" || true
    done
}

stop_test_clusters() {
    # The work directories env/k8s-node.sh and env/k8s-cluster.sh use.
    node_workdir=${MINIMALDASK_NODE_WORKDIR:-$tmp/minimaldask-node}
    kwok_workdir=${MINIMALDASK_KWOK_WORKDIR:-$tmp/minimaldask-kwok}
    stop_each "test node" k8s-node.sh "$node_workdir/node"
    stop_each "control plane" k8s-cluster.sh "$kwok_workdir/clusters"
    # Their state, including mounts a crashed node left.
    for workdir in "$node_workdir" "$kwok_workdir"; do
        [ -d "$workdir" ] || continue
        awk -v d="$workdir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
        # Never into a mount that is still there (a pod's volume, a host folder).
        rm -rf --one-file-system "$workdir" || say "kept $workdir: something is still mounted below it"
    done
}

stop_engine() {
    stop_all "the registry" "docker-registry serve $cache/*"
    # An engine the set-up found running is not its to stop or to empty.
    [ -f "$MINIMALDASK_STATE/engine-installed" ] || [ -f "$MINIMALDASK_STATE/dockerd.pid" ] || return 0
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        # shellcheck disable=SC2046  # one argument per container
        docker rm -f $(docker ps -aq) >/dev/null 2>&1 || true
    fi
    stop_all "dockerd" "dockerd --config-file $prefix/etc/daemon.json*"
    [ -f "$MINIMALDASK_STATE/engine-installed" ] || return 0
    stop_all "containerd" "containerd --config /var/run/docker/*"
    awk '$2 ~ "^/(var/lib|run)/(docker|containerd)" { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    # The engine's state and the bridge it created.
    rm -rf /var/lib/docker /var/lib/containerd /run/docker /var/run/docker.sock /run/containerd
    if ip link show docker0 >/dev/null 2>&1; then ip link del docker0 || true; fi
}

unregister_qemu() {
    for arch in aarch64 arm; do
        entry=/proc/sys/fs/binfmt_misc/qemu-$arch
        if grep -qx "interpreter $opt/qemu/qemu-$arch" "$entry" 2>/dev/null; then
            say "unregistering the binfmt handler qemu-$arch"
            echo -1 >"$entry"
        fi
    done
}

remove_installed() {
    if [ -f "$MINIMALDASK_STATE/links" ]; then
        while read -r link; do [ ! -L "$link" ] || rm -f "$link"; done <"$MINIMALDASK_STATE/links"
    fi
    rmdir /usr/local/lib/docker/cli-plugins /usr/local/lib/docker 2>/dev/null || true
    # What bootstrap.sh unpacked: the engine and the QEMU binaries, side by side.
    rm -rf "$prefix" "$opt/qemu"
    rmdir "$opt" 2>/dev/null || true
    if [ -s "$installed_packages" ]; then
        sort -u "$installed_packages" >"$installed_packages.sorted"
        packages=$(tr '\n' ' ' <"$installed_packages.sorted")
        say "removing the packages the set-up installed: $packages"
        # Only those: a package installed since that needs one of them stays, and so do they.
        # shellcheck disable=SC2086  # one argument per package
        removals=$(apt-get -s purge $packages 2>>"$apt_log" | sed -n 's/^Purg \([^ :]*\).*/\1/p' | sort)
        others=$(printf '%s\n' "$removals" | comm -23 - "$installed_packages.sorted" | tr '\n' ' ')
        [ -z "${others% }" ] || die "removing them would also remove $others(installed since, and depending on them): remove those first, or the set-up's packages by hand"
        # shellcheck disable=SC2086
        apt_get purge $packages || die "apt-get purge failed; see $apt_log"
    fi
    if [ -f /etc/apt/sources.list.d/minimaldask-sid.sources ]; then
        rm -f /etc/apt/sources.list.d/minimaldask-sid.sources /etc/apt/preferences.d/minimaldask-sid
        apt-get update -qq >>"$apt_log" 2>&1 || say "apt-get update failed (Debian unstable's package lists may stay); see $apt_log"
    fi
    rm -rf "$MINIMALDASK_STATE"
}

remove_caches() {
    [ -d "$cache" ] || return 0
    if [ "${KEEP_CACHE:-}" = 1 ]; then
        say "keeping the Kubernetes, CoreDNS and Go build caches in $cache (KEEP_CACHE=1)"
        for entry in "$cache"/* "$cache"/.[!.]*; do
            [ -e "$entry" ] || continue
            case ${entry##*/} in k8s | go | coredns) ;; *) rm -rf "$entry" ;; esac
        done
    else
        rm -rf "$cache"
    fi
}

stop_test_clusters
stop_engine
unregister_qemu
remove_installed
remove_caches
say "done: the machine is as before the set-up${KEEP_CACHE:+ (build caches kept)}"
