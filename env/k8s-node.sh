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
# every process are in $workdir/node/NAME/logs.
# Environment: MINIMALDASK_CACHE (binaries), MINIMALDASK_REGISTRY,
#              MINIMALDASK_NODE_WORKDIR (default ${TMPDIR:-/tmp}/minimaldask-node),
#              MINIMALDASK_NODE_TIMEOUT (seconds to wait for each step, default 180).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091 # plain KEY=VALUE pins, nothing to follow
. "$here/versions.env"
# shellcheck source=env/kwokctl-config.sh
. "$here/kwokctl-config.sh"
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

cache=$MINIMALDASK_CACHE
registry=$MINIMALDASK_REGISTRY
workdir=${MINIMALDASK_NODE_WORKDIR:-${TMPDIR:-/tmp}/minimaldask-node}
timeout=${MINIMALDASK_NODE_TIMEOUT:-180}
bridge=${MINIMALDASK_NODE_BRIDGE:-mdk0}
pod_cidr=10.244.0.0/24
node_ip=10.244.0.1
service_cidr=10.96.0.0/24
pause_image=$registry/pause:3.10
check_image=$registry/minimaldask/debian-base:trixie
cni_bin=/usr/lib/cni
chain_fwd=MDK-NODE-FWD
chain_in=MDK-NODE-IN

bin=$(sh "$here/k8s-build.sh" --bin-dir)
coredns_bin=$cache/coredns/$COREDNS_VERSION/coredns
pause_bin=$cache/pause/pause
cluster_dir=$workdir/clusters/$name
kubeconfig=$cluster_dir/kubeconfig.yaml
node_dir=$workdir/node/$name
logs=$node_dir/logs
run=$node_dir/run
ctr_root=$node_dir/containerd/root # kept by `down`: the image cache
ctr_state=$node_dir/containerd/state
sock=$run/containerd.sock

tag=k8s-node
# shellcheck source=env/lib.sh
. "$here/lib.sh"

# kwokctl reads KWOK_* variables over its config: pin the ones that matter.
export KWOK_WORKDIR="$workdir"
export KWOK_RUNTIME=binary
unset KWOK_KUBE_VERSION KWOK_KUBE_BINARY_PREFIX KWOK_KUBECTL_BINARY \
    KWOK_KUBE_APISERVER_BINARY KWOK_KUBE_CONTROLLER_MANAGER_BINARY \
    KWOK_KUBE_SCHEDULER_BINARY KWOK_CONTROLLER_BINARY KWOK_BINARY_PREFIX \
    KWOK_ETCD_BINARY KWOK_ETCD_BINARY_TAR KWOK_ETCD_BINARY_PREFIX \
    KWOK_ETCD_VERSION 2>/dev/null || true

kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" --request-timeout=10s "$@"; }
ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }

# One up/down at a time (flock -o: the daemons must not inherit the lock).
if [ "$cmd" = up ] || [ "$cmd" = down ]; then
    mkdir -p "$workdir"
    if [ -z "${MINIMALDASK_K8S_NODE_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
        MINIMALDASK_K8S_NODE_LOCKED=1 exec flock -o "$workdir/.lock" sh "$0" "$@"
    fi
fi


pid_alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start NAME COMMAND...: run COMMAND in the background (own session), log to logs/NAME.log.
start() {
    what=$1
    shift
    if pid_alive "$what"; then
        return 0
    fi
    say "starting $what (log: $logs/$what.log)"
    setsid "$@" </dev/null >>"$logs/$what.log" 2>&1 &
    echo $! >"$run/$what.pid"
}

stop() {
    what=$1
    [ -f "$run/$what.pid" ] || return 0
    pid=$(cat "$run/$what.pid")
    if kill "$pid" 2>/dev/null; then
        i=0
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 20 ]; do
            sleep 0.5
            i=$((i + 1))
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$run/$what.pid"
}

fail_with_logs() {
    for f in "$@"; do
        [ -f "$logs/$f.log" ] || continue
        say "--- last lines of $logs/$f.log"
        tail -n 15 "$logs/$f.log" >&2
    done
    die "$what_failed"
}

# --- prerequisites -----------------------------------------------------------
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

# The sandbox ("pause") image: a static Go binary that waits for SIGINT/SIGTERM
# and reaps zombies, imported by docker and pushed to the local registry.
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
    src=$cache/pause/src
    mkdir -p "$src" "$cache/pause/root"
    cat >"$src/pause.go" <<'EOF'
// pause: the sandbox process of a pod. Sleeps until SIGINT/SIGTERM, reaps zombies.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
EOF
    (go_env && cd "$src" && go build -trimpath -ldflags "-s -w" -o "$cache/pause/root/pause" pause.go) >&2 ||
        die "pause build failed"
    cp "$cache/pause/root/pause" "$pause_bin"
    tar -C "$cache/pause/root" -cf "$cache/pause/pause.tar" pause
    docker import --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' \
        "$cache/pause/pause.tar" "$pause_image" >&2 || die "docker import of the pause image failed"
    docker push -q "$pause_image" >&2 || die "docker push $pause_image failed"
}

# --- network -------------------------------------------------------------------
network_up() {
    if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add "$bridge" type bridge
    fi
    ip addr show dev "$bridge" | grep -q "inet $node_ip/" || ip addr add "$node_ip/24" dev "$bridge"
    ip link set "$bridge" up
    # Service IPs that kube-proxy does not rewrite stay on the bridge (never the default route).
    ip route replace "$service_cidr" dev "$bridge" src "$node_ip"
    iptables -w -N "$chain_fwd" 2>/dev/null || iptables -w -F "$chain_fwd"
    iptables -w -A "$chain_fwd" -i "$bridge" -o "$bridge" -j ACCEPT
    iptables -w -A "$chain_fwd" -i "$bridge" -j DROP
    iptables -w -A "$chain_fwd" -o "$bridge" -j DROP
    iptables -w -C FORWARD -j "$chain_fwd" 2>/dev/null || iptables -w -I FORWARD 1 -j "$chain_fwd"
    # Pods may not talk to the kubelet API (only the API server, from 127.0.0.1/the node).
    iptables -w -N "$chain_in" 2>/dev/null || iptables -w -F "$chain_in"
    iptables -w -A "$chain_in" -i "$bridge" -p tcp --dport 10250 -j DROP
    iptables -w -C INPUT -j "$chain_in" 2>/dev/null || iptables -w -I INPUT 1 -j "$chain_in"
    mkdir -p "$node_dir/cni/net.d" "$node_dir/cni/ipam"
    cat >"$node_dir/cni/net.d/10-minimaldask.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "minimaldask",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$node_dir/cni/ipam",
        "ranges": [[{"subnet": "$pod_cidr", "gateway": "$node_ip"}]],
        "routes": [{"dst": "$service_cidr", "gw": "$node_ip"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

network_down() {
    while iptables -w -D FORWARD -j "$chain_fwd" 2>/dev/null; do :; done
    iptables -w -F "$chain_fwd" 2>/dev/null || true
    iptables -w -X "$chain_fwd" 2>/dev/null || true
    while iptables -w -D INPUT -j "$chain_in" 2>/dev/null; do :; done
    iptables -w -F "$chain_in" 2>/dev/null || true
    iptables -w -X "$chain_in" 2>/dev/null || true
    ip route del "$service_cidr" dev "$bridge" 2>/dev/null || true
    ip link del "$bridge" 2>/dev/null || true
    # What kube-proxy --cleanup leaves: the kubelet's own chains (KUBE-FIREWALL, the
    # canaries, KUBE-MARK-MASQ, ...) and the portmap plugin's (CNI-*), in both families.
    for tool in iptables ip6tables; do
        for table in filter nat mangle; do
            chains=$($tool -w -t "$table" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[^ ]*\|CNI-[^ ]*\)$/\1/p')
            [ -n "$chains" ] || continue
            for c in $chains; do
                $tool -w -t "$table" -S 2>/dev/null | grep -- "-j $c\$" | sed 's/^-A/-D/' |
                    while read -r rule; do
                        eval "$tool -w -t $table $rule" 2>/dev/null || true
                    done
            done
            for c in $chains; do $tool -w -t "$table" -F "$c" 2>/dev/null || true; done
            for c in $chains; do $tool -w -t "$table" -X "$c" 2>/dev/null || true; done
        done
    done
}

# --- containerd ------------------------------------------------------------------
containerd_config() {
    mkdir -p "$node_dir/containerd/certs.d/$registry" "$ctr_root" "$ctr_state"
    cat >"$node_dir/containerd/certs.d/$registry/hosts.toml" <<EOF
server = "http://$registry"

[host."http://$registry"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
    cat >"$node_dir/containerd/config.toml" <<EOF
version = 3
root = "$ctr_root"
state = "$ctr_state"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = "$sock"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = "$pause_image"
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = "$node_dir/containerd/certs.d"

  [plugins."io.containerd.cri.v1.runtime"]
    netns_mounts_under_state_dir = true
    # Lower an OOM score only as far as containerd's own (the CRI asks -998 for sandboxes):
    # without CAP_SYS_RESOURCE (some VMs, containers) a negative score is refused and runc fails
    # with "can't get final child's PID from pipe: EOF".
    restrict_oom_score_adj = true
    enable_cdi = false
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          BinaryName = "$(command -v runc)"
          Root = "$ctr_state/runc"
          SystemdCgroup = false
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = ["$cni_bin"]
      conf_dir = "$node_dir/cni/net.d"
      max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri"]
    disable_tcp_service = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"

  [plugins."io.containerd.internal.v1.opt"]
    path = "$node_dir/containerd/opt"

  [plugins."io.containerd.transfer.v1.local"]
    config_path = "$node_dir/containerd/certs.d"
EOF
}

containerd_answers() { ctr_ version; }

# --- control plane -----------------------------------------------------------------
api_ready() {
    [ -f "$kubeconfig" ] && kubectl get --raw /readyz >/dev/null 2>&1
}

control_plane_up() {
    if [ -d "$cluster_dir" ] && api_ready; then
        say "control plane $name already running"
        return 0
    fi
    if [ -d "$cluster_dir" ]; then
        say "control plane $name exists but does not answer: recreating it"
        "$bin/kwokctl" delete cluster --name "$name" --kubeconfig "$kubeconfig" >>"$logs/kwokctl.log" 2>&1 || true
    fi
    pki=$cluster_dir/pki
    {
        kwokctl_options "$bin"
        cat <<EOF
  disable:
  - kwok-controller
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - key: service-cluster-ip-range
    value: $service_cidr
  - key: advertise-address
    value: $node_ip
  - key: kubelet-client-certificate
    value: $pki/admin.crt
  - key: kubelet-client-key
    value: $pki/admin.key
  - key: kubelet-preferred-address-types
    value: InternalIP
EOF
    } >"$workdir/$name.kwokctl.yaml"
    say "starting the control plane $name (log: $logs/kwokctl.log)"
    "$bin/kwokctl" --config "$workdir/$name.kwokctl.yaml" create cluster --name "$name" --runtime binary \
        --kubeconfig '' --timeout "${timeout}s" --wait "${timeout}s" >>"$logs/kwokctl.log" 2>&1 || {
        what_failed="kwokctl create cluster $name failed"
        fail_with_logs kwokctl
    }
    wait_for "$timeout" "API server" api_ready || {
        what_failed="the API server of $name does not answer"
        fail_with_logs kwokctl
    }
}

# --- kubelet, kube-proxy, CoreDNS -----------------------------------------------
node_configs() {
    mkdir -p "$node_dir/kubelet"
    cat >"$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
oomScoreAdj: 0
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
clusterDomain: cluster.local
clusterDNS: [$node_ip]
resolvConf: ""
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $cluster_dir/pki/ca.crt}
authorization: {mode: Webhook}
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
maxPods: 110
nodeStatusReportFrequency: 10s
EOF
    cat >"$node_dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $pod_cidr
hostnameOverride: $name
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$node_ip/32"]
clientConnection: {kubeconfig: $kubeconfig}
conntrack: {maxPerCore: 0}
oomScoreAdj: 0
iptables: {masqueradeAll: false, localhostNodePorts: false}
EOF
    # cluster.local from the API; nothing is forwarded: no query leaves the machine.
    cat >"$node_dir/Corefile" <<EOF
.:53 {
    bind $node_ip
    errors
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
EOF
}

node_ready() {
    [ "$(kubectl get node "$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

coredns_ready() { curl -fsS --max-time 2 http://127.0.0.1:18181/ready; }

# A pod on the node resolves a Service name through the cluster DNS.
dns_check() {
    pod=k8s-node-dns-check
    kubectl delete pod -n default "$pod" --ignore-not-found --wait=true >/dev/null 2>&1 || true
    kubectl apply -f - >/dev/null <<EOF || return 1
apiVersion: v1
kind: Pod
metadata: {name: $pod, namespace: default}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 0
  containers:
  - name: check
    image: $check_image
    command: ["getent", "hosts", "kubernetes.default.svc.cluster.local"]
EOF
    deadline=$(($(date +%s) + timeout))
    phase=""
    while [ "$(date +%s)" -lt "$deadline" ]; do
        phase=$(kubectl get pod -n default "$pod" -o jsonpath='{.status.phase}' 2>/dev/null || true)
        case $phase in Succeeded | Failed) break ;; esac
        sleep 1
    done
    out=$(kubectl logs -n default "$pod" 2>&1 || true)
    if [ "$phase" != Succeeded ]; then
        say "DNS check pod ended in phase '$phase': $out"
        kubectl describe pod -n default "$pod" 2>&1 | tail -n 15 >&2 || true
        kubectl delete pod -n default "$pod" --ignore-not-found --wait=false >/dev/null 2>&1 || true
        return 1
    fi
    say "DNS from a pod: $out"
    kubectl delete pod -n default "$pod" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}

up() {
    t0=$(date +%s)
    if [ -f "$workdir/active" ] && [ "$(cat "$workdir/active")" != "$name" ]; then
        die "node $(cat "$workdir/active") is up on this machine: one node at a time ($0 down $(cat "$workdir/active"))"
    fi
    prerequisites
    mkdir -p "$logs" "$run"
    echo "$name" >"$workdir/active"
    network_up
    containerd_config
    if ! containerd_answers >/dev/null 2>&1; then
        stop containerd
        start containerd containerd --config "$node_dir/containerd/config.toml"
        wait_for 60 containerd containerd_answers || {
            what_failed="containerd does not answer on $sock"
            fail_with_logs containerd
        }
    fi
    control_plane_up
    node_configs
    start kubelet "$bin/kubelet" --config "$node_dir/kubelet.yaml" --kubeconfig "$kubeconfig" \
        --root-dir "$node_dir/kubelet" --node-ip "$node_ip" --hostname-override "$name" --v=2
    start kube-proxy "$bin/kube-proxy" --config "$node_dir/kube-proxy.yaml" --v=2
    start coredns "$coredns_bin" -conf "$node_dir/Corefile"
    wait_for "$timeout" "node $name Ready" node_ready || {
        what_failed="node $name is not Ready"
        fail_with_logs kubelet containerd
    }
    wait_for 60 CoreDNS coredns_ready || {
        what_failed="CoreDNS is not ready"
        fail_with_logs coredns
    }
    dns_check || {
        what_failed="a pod cannot resolve a Service name"
        fail_with_logs coredns kube-proxy kubelet containerd
    }
    # kube-proxy prepends its FORWARD rules: put the bridge's isolation first again.
    iptables -w -D FORWARD -j "$chain_fwd" 2>/dev/null || true
    iptables -w -I FORWARD 1 -j "$chain_fwd"
    say "node $name Ready with cluster DNS in $(($(date +%s) - t0)) s"
    echo "$kubeconfig"
}

# PIDs of the shims of our containerd (their command line names our socket).
shim_pids() {
    for p in /proc/[0-9]*; do
        args=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        case $args in
            *containerd-shim*"$sock"*) echo "${p#/proc/}" ;;
        esac
    done
}

no_pods() { [ -z "$(kubectl get pods --all-namespaces -o name 2>/dev/null)" ]; }

down() {
    if [ -d "$node_dir" ]; then
        # Pods first, while the kubelet still tears their networks down (CNI DEL).
        if api_ready && pid_alive kubelet; then
            kubectl delete pods --all --all-namespaces --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
            wait_for 60 "pod removal" no_pods || true
        fi
        stop coredns
        stop kube-proxy
        stop kubelet
        if containerd_answers >/dev/null 2>&1; then
            for c in $(ctr_ containers list -q 2>/dev/null); do
                ctr_ tasks kill -s KILL "$c" >/dev/null 2>&1 || true
            done
            sleep 1
            for c in $(ctr_ containers list -q 2>/dev/null); do
                ctr_ tasks delete -f "$c" >/dev/null 2>&1 || true
                ctr_ containers delete "$c" >/dev/null 2>&1 || true
            done
        fi
        stop containerd
        for pid in $(shim_pids); do kill -9 "$pid" 2>/dev/null || true; done
        # kube-proxy's iptables rules.
        [ ! -x "$bin/kube-proxy" ] || "$bin/kube-proxy" --cleanup >>"$logs/kube-proxy.log" 2>&1 || true
        # Mounts of pod volumes, rootfs and network namespaces, deepest first.
        awk -v d="$node_dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
        # Keep the image store (containerd/root) for the next `up`; drop everything else.
        for d in "$node_dir"/*; do
            [ "$d" = "$node_dir/containerd" ] || [ "$d" = "$logs" ] || rm -rf "$d"
        done
        for d in "$node_dir"/containerd/*; do
            [ "$d" = "$ctr_root" ] || rm -rf "$d"
        done
    fi
    network_down
    # The kubelet's cgroups (empty once the pods are gone).
    for d in /sys/fs/cgroup/*/kubepods; do
        if [ -d "$d" ]; then
            find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        fi
    done
    if [ -d "$cluster_dir" ]; then
        "$bin/kwokctl" delete cluster --name "$name" --kubeconfig "$kubeconfig" >/dev/null 2>&1 || true
    fi
    rm -rf "$cluster_dir" "$workdir/$name.kwokctl.yaml"
    if [ -f "$workdir/active" ] && [ "$(cat "$workdir/active")" = "$name" ]; then
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
