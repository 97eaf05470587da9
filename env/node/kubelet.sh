# shellcheck shell=sh disable=SC2154  # $node_dir, $name, ...: set by env/k8s-node.sh, which sources this
# The node itself: the kubelet, kube-proxy (iptables) and CoreDNS (the cluster DNS, on the
# bridge IP), up when the node is Ready and a pod resolves a Service name.

node_configs() {
    mkdir -p "$node_dir/kubelet"
    render "$here/templates/kubelet.yaml" >"$node_dir/kubelet.yaml"
    kube_proxy_config
    render "$here/templates/Corefile" >"$node_dir/Corefile"
}

# kube-proxy exits as soon as its config file is written, even with the same content (it
# watches the file): an `up` of a running node keeps the file as it is, and a changed one
# is written with kube-proxy stopped (kubelet_up starts it again).
kube_proxy_config() {
    config=$node_dir/kube-proxy.yaml
    render "$here/templates/kube-proxy.yaml" >"$config.new"
    if cmp -s "$config.new" "$config"; then
        rm -f "$config.new"
    else
        stop kube-proxy
        mv -f "$config.new" "$config"
    fi
}

node_ready() {
    [ "$(kubectl get node "$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

coredns_ready() { curl -fsS --max-time 2 http://127.0.0.1:18181/ready; }

check_pod=k8s-node-dns-check
check_pod_phase() { kubectl get pod -n default "$check_pod" -o jsonpath='{.status.phase}' 2>/dev/null || true; }
check_pod_done() { case $(check_pod_phase) in Succeeded | Failed) return 0 ;; *) return 1 ;; esac; }
check_pod_delete() { kubectl delete pod -n default "$check_pod" --ignore-not-found "$@" >/dev/null 2>&1 || true; }

# A pod on the node resolves a Service name through the cluster DNS.
dns_check() {
    check_pod_delete --wait=true
    render "$here/templates/dns-check-pod.yaml" >"$node_dir/dns-check-pod.yaml"
    kubectl apply -f "$node_dir/dns-check-pod.yaml" >/dev/null || return 1
    wait_for "$timeout" "DNS check pod $check_pod" check_pod_done || true
    phase=$(check_pod_phase)
    out=$(kubectl logs -n default "$check_pod" 2>&1 || true)
    if [ "$phase" != Succeeded ]; then
        say "DNS check pod ended in phase '$phase': $out"
        kubectl describe pod -n default "$check_pod" 2>&1 | tail -n 15 >&2 || true
        check_pod_delete --wait=false
        return 1
    fi
    say "DNS from a pod: $out"
    check_pod_delete --wait=false
}

kubelet_up() {
    node_configs
    start kubelet "$bin/kubelet" --config "$node_dir/kubelet.yaml" --kubeconfig "$kubeconfig" \
        --root-dir "$node_dir/kubelet" --node-ip "$node_ip" --hostname-override "$name" --v=2
    start kube-proxy "$bin/kube-proxy" --config "$node_dir/kube-proxy.yaml" --v=2
    start coredns "$coredns_bin" -conf "$node_dir/Corefile"
    wait_for "$timeout" "node $name Ready" node_ready || fail_with_logs "node $name is not Ready" kubelet containerd
    wait_for 60 CoreDNS coredns_ready || fail_with_logs "CoreDNS is not ready" coredns
    dns_check || fail_with_logs "a pod cannot resolve a Service name" coredns kube-proxy kubelet containerd
}

no_pods() { [ -z "$(kubectl get pods --all-namespaces -o name 2>/dev/null)" ]; }

# Pods first, while the kubelet still tears their networks down (CNI DEL); then the daemons.
kubelet_down() {
    if api_ready && pid_alive kubelet; then
        kubectl delete pods --all --all-namespaces --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
        wait_for 60 "pod removal" no_pods || true
    fi
    stop coredns
    stop kube-proxy
    stop kubelet
}

# kube-proxy's iptables rules.
kube_proxy_cleanup() {
    [ ! -x "$bin/kube-proxy" ] || "$bin/kube-proxy" --cleanup >>"$logs/kube-proxy.log" 2>&1 || true
}

# The kubelet's cgroups (empty once the pods are gone).
remove_kubepods_cgroups() {
    for d in /sys/fs/cgroup/*/kubepods; do
        if [ -d "$d" ]; then
            find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        fi
    done
}
