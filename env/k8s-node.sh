#!/bin/sh
# One REAL Kubernetes node for the end-to-end tests: a control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, run by
# `kwokctl --runtime binary` WITHOUT its kwok controller, which would take the
# node over), and beside it a kubelet, kube-proxy (iptables), CoreDNS and a
# containerd of its own (own root, state and socket; NOT docker's) with the CRI
# plugin, CNI bridge + host-local IPAM from Debian's containernetworking-plugins.
#
# Usage: env/k8s-node.sh up NAME          start (or reuse) cluster + node NAME, wait
#                                         until the node is Ready and a pod resolves
#                                         a Service name; print the kubeconfig path
#        env/k8s-node.sh down NAME        stop everything; remove pods, netns,
#                                         bridge, routes and iptables rules
#        env/k8s-node.sh kubeconfig NAME  print the kubeconfig path
#        env/k8s-node.sh env NAME         print KEY=VALUE facts (socket, dirs, ...)
#
# Nothing is pulled from the internet: the pause image is built here (a tiny
# static Go binary) and pushed to the local registry; containerd pulls only from
# 127.0.0.1:5000 (plain http). Network: bridge $MINIMALDASK_NODE_BRIDGE with
# the pod CIDR, NO masquerade and no default route in the pods: pods reach each
# other, the node (the bridge IP: DNS) and Service IPs; the host's FORWARD chain
# drops everything else that enters or leaves the bridge. Only one node per
# machine (fixed bridge, CIDRs and kubelet port). Needs root.
#
# Only the kubeconfig path goes to stdout; progress goes to stderr; the logs of
# every process are in $workdir/node/NAME/logs. The parts are in env/node/*.sh, the
# config files they write are the templates in env/templates/ (filled by `render`).
# Environment: MINIMALDASK_CACHE (binaries), MINIMALDASK_REGISTRY,
#              MINIMALDASK_NODE_WORKDIR (default ${TMPDIR:-/tmp}/minimaldask-node),
#              MINIMALDASK_NODE_TIMEOUT (seconds to wait for each step, default 180).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091 # plain KEY=VALUE pins, nothing to follow
. "$here/versions.env"
# shellcheck source=env/defaults.sh
. "$here/defaults.sh"

usage() {
    echo "usage: $0 up|down|kubeconfig|env NAME" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
name=$2
case $name in
    "" | *[!a-z0-9-]* | -*) echo "k8s-node: bad name '$name' (use [a-z0-9-])" >&2; exit 2 ;;
esac

# The node's facts (`env` prints them); the templates in env/templates/ use these names.
cache=$MINIMALDASK_CACHE
registry=$MINIMALDASK_REGISTRY
workdir=${MINIMALDASK_NODE_WORKDIR:-${TMPDIR:-/tmp}/minimaldask-node}
timeout=${MINIMALDASK_NODE_TIMEOUT:-180}
bridge=${MINIMALDASK_NODE_BRIDGE:-mdk0}
pod_cidr=10.244.0.0/24
node_ip=10.244.0.1
service_cidr=10.96.0.0/24
api_service_ip=10.96.0.1 # the first of service_cidr: the kubernetes Service
pause_image=$registry/pause:3.10
# shellcheck disable=SC2034 # read by render (env/templates/dns-check-pod.yaml)
check_image=$registry/minimaldask/debian-base:trixie
cni_bin=/usr/lib/cni
chain_fwd=MDK-NODE-FWD
chain_in=MDK-NODE-IN
chain_api=MDK-NODE-API

bin=$(sh "$here/k8s-build.sh" --bin-dir)
coredns_bin=$cache/coredns/$COREDNS_VERSION/coredns
pause_bin=$cache/pause/pause
cluster_dir=$workdir/clusters/$name
kubeconfig=$cluster_dir/kubeconfig.yaml
kwokctl_yaml=$workdir/$name.kwokctl.yaml
node_dir=$workdir/node/$name
logs=$node_dir/logs
run=$node_dir/run
ctr_root=$node_dir/containerd/root # kept by `down`: the image cache
ctr_state=$node_dir/containerd/state
sock=$run/containerd.sock

tag=k8s-node
# shellcheck source=env/lib.sh
. "$here/lib.sh"
# shellcheck source=env/kwokctl-config.sh
. "$here/kwokctl-config.sh"
# shellcheck source=env/node/processes.sh
. "$here/node/processes.sh"
# shellcheck source=env/node/prerequisites.sh
. "$here/node/prerequisites.sh"
# shellcheck source=env/node/network.sh
. "$here/node/network.sh"
# shellcheck source=env/node/containerd.sh
. "$here/node/containerd.sh"
# shellcheck source=env/node/control-plane.sh
. "$here/node/control-plane.sh"
# shellcheck source=env/node/kubelet.sh
. "$here/node/kubelet.sh"
kwokctl_env "$workdir"

kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=10s "$@"; }
ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }

# One up/down at a time (flock -o: the daemons must not inherit the lock).
if [ "$cmd" = up ] || [ "$cmd" = down ]; then
    mkdir -p "$workdir"
    if [ -z "${MINIMALDASK_K8S_NODE_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
        export MINIMALDASK_K8S_NODE_LOCKED=1
        run_locked 1800 "$workdir/.lock" sh "$0" "$@"
    fi
fi

active_node() { cat "$workdir/active" 2>/dev/null || true; }

up() {
    t0=$(date +%s)
    active=$(active_node)
    if [ -n "$active" ] && [ "$active" != "$name" ]; then
        die "node $active is up on this machine: one node at a time ($0 down $active)"
    fi
    prerequisites
    mkdir -p "$logs" "$run"
    echo "$name" >"$workdir/active"
    network_up
    containerd_up
    control_plane_up
    kubelet_up
    isolation_first
    api_for_pods
    say "node $name Ready with cluster DNS in $(($(date +%s) - t0)) s"
    echo "$kubeconfig"
}

# Mounts of pod volumes, rootfs and network namespaces (deepest first), then the node's
# files, but for the image store (containerd/root, for the next `up`) and the logs.
clear_node_dir() {
    awk -v d="$node_dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    for d in "$node_dir"/*; do
        [ "$d" = "$node_dir/containerd" ] || [ "$d" = "$logs" ] || rm -rf --one-file-system "$d" || say "kept $d: something is still mounted below it"
    done
    for d in "$node_dir"/containerd/*; do
        [ "$d" = "$ctr_root" ] || rm -rf --one-file-system "$d" || say "kept $d: something is still mounted below it"
    done
}

down() {
    if [ -d "$node_dir" ]; then
        kubelet_down
        containerd_down
        kube_proxy_cleanup
        clear_node_dir
    fi
    network_down
    remove_kubepods_cgroups
    control_plane_down
    if [ "$(active_node)" = "$name" ]; then
        rm -f "$workdir/active"
    fi
    say "node $name is down"
}

case $cmd in
    up) up ;;
    down) down ;;
    kubeconfig)
        [ -f "$kubeconfig" ] || die "no node $name (no $kubeconfig)"
        echo "$kubeconfig"
        ;;
    env)
        echo "KUBECONFIG=$kubeconfig"
        echo "CONTAINERD_ADDRESS=$sock"
        echo "CONTAINERD_NAMESPACE=k8s.io"
        echo "NODE_NAME=$name"
        echo "NODE_IP=$node_ip"
        echo "POD_CIDR=$pod_cidr"
        echo "SERVICE_CIDR=$service_cidr"
        echo "NODE_DIR=$node_dir"
        echo "LOG_DIR=$logs"
        ;;
    *) usage ;;
esac
