# shellcheck shell=sh disable=SC2154  # $sock, $node_dir, ...: set by env/k8s-node.sh, which sources this
# The node's own containerd (own root, state and socket; not docker's) with the CRI plugin.
# It pulls only from the local registry, over plain http.

containerd_answers() { ctr_ version; }

containerd_config() {
    mkdir -p "$node_dir/containerd/certs.d/$registry" "$ctr_root" "$ctr_state"
    render "$here/templates/containerd-hosts.toml" >"$node_dir/containerd/certs.d/$registry/hosts.toml"
    # shellcheck disable=SC2034 # read by render (env/templates/containerd.toml)
    runc=$(command -v runc)
    render "$here/templates/containerd.toml" >"$node_dir/containerd/config.toml"
}

containerd_up() {
    containerd_config
    containerd_answers >/dev/null 2>&1 && return 0
    stop containerd
    start containerd containerd --config "$node_dir/containerd/config.toml"
    wait_for 60 containerd containerd_answers ||
        fail_with_logs "containerd does not answer on $sock" containerd
}

# PIDs of the shims of our containerd (their command line names our socket).
shim_pids() { pids_running "*containerd-shim*$sock*"; }

# Every container killed and removed, then containerd and its shims stopped.
containerd_down() {
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
}
