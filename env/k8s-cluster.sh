#!/bin/sh
# A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) plus the kwok controller, run as local processes by
# `kwokctl --runtime binary` from the binaries that env/k8s-build.sh cached.
# Everything listens on 127.0.0.1 only (random free ports); nothing is
# downloaded. No node is created: tests add kwok fake nodes themselves
# (tests/helpers/kwok_cluster.py add_fake_node).
#
# Usage: env/k8s-cluster.sh up NAME          build binaries if needed, start (or
#                                            reuse) cluster NAME, wait for the
#                                            API, print its kubeconfig path
#        env/k8s-cluster.sh down NAME        delete cluster NAME and its processes
#        env/k8s-cluster.sh kubeconfig NAME  print the kubeconfig path of NAME
#
# Only the kubeconfig path goes to stdout; progress goes to stderr.
# Environment: MINIMALDASK_CACHE (binaries, see k8s-build.sh),
#              MINIMALDASK_KWOK_WORKDIR (cluster state and logs,
#              default ${TMPDIR:-/tmp}/minimaldask-kwok),
#              MINIMALDASK_K8S_TIMEOUT (seconds to wait for the API, default 120).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091 # plain KEY=VALUE pins, nothing to follow
. "$here/versions.env"
# shellcheck source=env/defaults.sh
. "$here/defaults.sh"

usage() {
    echo "usage: $0 up|down|kubeconfig NAME" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
name=$2
case $name in
    "" | *[!a-z0-9-]* | -*) echo "k8s-cluster: bad cluster name '$name' (use [a-z0-9-])" >&2; exit 2 ;;
esac

bin=$(sh "$here/k8s-build.sh" --bin-dir)
workdir=${MINIMALDASK_KWOK_WORKDIR:-${TMPDIR:-/tmp}/minimaldask-kwok}
timeout=${MINIMALDASK_K8S_TIMEOUT:-120}
cluster_dir=$workdir/clusters/$name
kubeconfig=$cluster_dir/kubeconfig.yaml

tag=k8s-cluster
# shellcheck source=env/lib.sh
. "$here/lib.sh"
# shellcheck source=env/kwokctl-config.sh
. "$here/kwokctl-config.sh"
kwokctl_env "$workdir"

# What every fake container "logs" (tests/helpers/kwok_cluster.py FAKE_LOG_LINE).
FAKE_LOG_LINE="kwok fake container: nothing runs here"

kwokctl() { "$bin/kwokctl" "$@"; }

# One up/down at a time per cluster (parallel test sessions). flock -o: the
# cluster's daemons must not inherit the lock's file descriptor, or they would
# hold the lock for as long as they run.
mkdir -p "$workdir/locks"
if [ "$cmd" != kubeconfig ] && [ -z "${MINIMALDASK_K8S_CLUSTER_LOCKED:-}" ] &&
    command -v flock >/dev/null 2>&1; then
    export MINIMALDASK_K8S_CLUSTER_LOCKED=1
    run_locked 1800 "$workdir/locks/$name" sh "$0" "$@"
fi

api_ready() {
    [ -f "$kubeconfig" ] &&
        "$bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s \
            get --raw /readyz >/dev/null 2>&1
}

# The controller-manager gives every namespace its default ServiceAccount: once "default"
# has one, its controllers run (pods are refused admission until then).
controllers_ready() {
    "$bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s \
        get serviceaccount default --namespace default >/dev/null 2>&1
}

wait_api() {
    wait_for "$timeout" "API of cluster $name (logs: $cluster_dir/logs)" api_ready &&
        wait_for "$timeout" "controller-manager of cluster $name (logs: $cluster_dir/logs)" controllers_ready
}

# PIDs of processes still running a binary of this cluster (its bin/ links).
cluster_pids() { pids_running "$cluster_dir/*"; }

# Every component kwokctl started (one pid file each) still runs: an API that answers is
# not enough to reuse a cluster whose controller-manager or scheduler has exited.
components_alive() {
    for f in "$cluster_dir"/pids/*.pid; do
        [ -f "$f" ] || return 1
        case $(tr '\0' ' ' 2>/dev/null <"/proc/$(cat "$f")/cmdline") in
            "$cluster_dir"/*) ;;
            *) return 1 ;;
        esac
    done
}

# kwokctl skips a component whose pid file names a process that answers
# signal 0, zombies included (this machine's PID 1 reaps them late): drop the
# pid files of processes that are not alive binaries of this cluster.
forget_dead_pids() {
    for f in "$cluster_dir"/pids/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        case $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") in
            "$cluster_dir"/*) ;;
            *) rm -f "$f" ;;
        esac
    done
}

up() {
    sh "$here/k8s-build.sh" >&2
    if [ -d "$cluster_dir" ]; then
        if api_ready && components_alive; then
            say "cluster $name already running"
            echo "$kubeconfig"
            return 0
        fi
        say "cluster $name exists but does not answer or lost a component: restarting it"
        forget_dead_pids
        if kwokctl start cluster --name "$name" >&2 && wait_api; then
            echo "$kubeconfig"
            return 0
        fi
        say "restart failed: recreating cluster $name"
        down
    fi
    mkdir -p "$workdir"
    config=$workdir/$name.kwokctl.yaml
    # kwok serves every fake container's log from one file (CRI log format), so that reading
    # pod logs works as on a real node.
    logs_file=$workdir/$name.container.log
    echo "2026-01-01T00:00:00.000000000Z stdout F $FAKE_LOG_LINE" >"$logs_file"
    kwokctl_config "$here/templates/kwok-fake-logs.yaml" >"$config"
    start=$(date +%s)
    # --kubeconfig '': do not add a context to ~/.kube/config.
    kwokctl --config "$config" create cluster --name "$name" --runtime binary \
        --kubeconfig '' --timeout "${timeout}s" --wait "${timeout}s" >&2
    wait_api
    say "cluster $name up in $(($(date +%s) - start)) s"
    echo "$kubeconfig"
}

down() {
    if [ -d "$cluster_dir" ]; then
        # --kubeconfig: kwokctl refuses '' here; name the cluster's own file
        # (deleted with it) so that ~/.kube/config is left alone.
        kwokctl delete cluster --name "$name" --kubeconfig "$kubeconfig" >&2 || true
    fi
    # Whatever kwokctl left (e.g. after a crash): only this cluster's processes.
    i=0
    pids=$(cluster_pids)
    while [ -n "$pids" ] && [ "$i" -lt 10 ]; do
        [ "$i" -gt 0 ] || say "stopping leftover processes of cluster $name: $(echo "$pids" | tr "\n" " ")"
        for pid in $pids; do kill "$pid" 2>/dev/null || true; done
        sleep 1
        i=$((i + 1))
        pids=$(cluster_pids)
    done
    for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$cluster_dir" "$workdir/$name.kwokctl.yaml" "$workdir/$name.container.log"
}

case $cmd in
    up) up ;;
    down) down ;;
    kubeconfig)
        if [ -f "$kubeconfig" ]; then
            echo "$kubeconfig"
        else
            say "no cluster $name (no $kubeconfig)"
            exit 1
        fi
        ;;
    *) usage ;;
esac
