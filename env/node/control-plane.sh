# shellcheck shell=sh disable=SC2154  # $cluster_dir, $kubeconfig, ...: set by env/k8s-node.sh, which sources this
# The control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), run by
# `kwokctl --runtime binary` WITHOUT its kwok controller, which would take the node over.

api_ready() { [ -f "$kubeconfig" ] && kubectl get --raw /readyz >/dev/null 2>&1; }

control_plane_up() {
    if [ -d "$cluster_dir" ] && api_ready; then
        say "control plane $name already running"
        return 0
    fi
    if [ -d "$cluster_dir" ]; then
        say "control plane $name exists but does not answer: recreating it"
        "$bin/kwokctl" delete cluster --name "$name" --kubeconfig "$kubeconfig" >>"$logs/kwokctl.log" 2>&1 || true
    fi
    kwokctl_config "$here/templates/kwokctl-node.yaml" >"$kwokctl_yaml"
    say "starting the control plane $name (log: $logs/kwokctl.log)"
    # --kubeconfig '': no context is added to ~/.kube/config.
    "$bin/kwokctl" --config "$kwokctl_yaml" create cluster --name "$name" --runtime binary \
        --kubeconfig '' --timeout "${timeout}s" --wait "${timeout}s" >>"$logs/kwokctl.log" 2>&1 ||
        fail_with_logs "kwokctl create cluster $name failed" kwokctl
    wait_for "$timeout" "API server" api_ready || fail_with_logs "the API server of $name does not answer" kwokctl
}

control_plane_down() {
    if [ -d "$cluster_dir" ]; then
        "$bin/kwokctl" delete cluster --name "$name" --kubeconfig "$kubeconfig" >/dev/null 2>&1 || true
    fi
    rm -rf "$cluster_dir" "$kwokctl_yaml"
}
