# shellcheck shell=sh disable=SC2154  # $bridge, $node_ip, ...: set by env/k8s-node.sh, which sources this
# The pod network: bridge $bridge with the pod CIDR, no masquerade, no default route in the
# pods. Pods reach each other, the node (the bridge IP: DNS) and Service IPs; the FORWARD
# chain drops everything else that enters or leaves the bridge.

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
    render "$here/templates/cni.conflist" >"$node_dir/cni/net.d/10-minimaldask.conflist"
}

# Pods reach the API server (bound to 127.0.0.1 only) at the kubernetes Service: its first
# IP, port 443, goes to 127.0.0.1:PORT before kube-proxy rewrites it to the node IP, where
# nothing listens (so: after kube-proxy has put its jump in PREROUTING). route_localnet lets
# the bridge carry 127.0.0.1 for these connections.
api_for_pods() {
    port=$(sed -n 's|^ *server: https://127.0.0.1:\([0-9]*\)$|\1|p' "$kubeconfig")
    [ -n "$port" ] || die "no API server port in $kubeconfig"
    sysctl -q -w "net.ipv4.conf.$bridge.route_localnet=1"
    iptables -w -t nat -N "$chain_api" 2>/dev/null || iptables -w -t nat -F "$chain_api"
    iptables -w -t nat -A "$chain_api" -i "$bridge" -d "$api_service_ip" -p tcp --dport 443 \
        -j DNAT --to-destination "127.0.0.1:$port"
    iptables -w -t nat -D PREROUTING -j "$chain_api" 2>/dev/null || true
    iptables -w -t nat -I PREROUTING 1 -j "$chain_api"
}

# kube-proxy prepends its FORWARD rules: put the bridge's isolation first again.
isolation_first() {
    iptables -w -D FORWARD -j "$chain_fwd" 2>/dev/null || true
    iptables -w -I FORWARD 1 -j "$chain_fwd"
}

network_down() {
    while iptables -w -D FORWARD -j "$chain_fwd" 2>/dev/null; do :; done
    iptables -w -F "$chain_fwd" 2>/dev/null || true
    iptables -w -X "$chain_fwd" 2>/dev/null || true
    while iptables -w -D INPUT -j "$chain_in" 2>/dev/null; do :; done
    iptables -w -F "$chain_in" 2>/dev/null || true
    iptables -w -X "$chain_in" 2>/dev/null || true
    while iptables -w -t nat -D PREROUTING -j "$chain_api" 2>/dev/null; do :; done
    iptables -w -t nat -F "$chain_api" 2>/dev/null || true
    iptables -w -t nat -X "$chain_api" 2>/dev/null || true
    ip route del "$service_cidr" dev "$bridge" 2>/dev/null || true
    ip link del "$bridge" 2>/dev/null || true
    for tool in iptables ip6tables; do
        for table in filter nat mangle; do
            drop_leftover_chains "$tool" "$table"
        done
    done
}

# drop_leftover_chains TOOL TABLE: what kube-proxy --cleanup leaves: the kubelet's own chains
# (KUBE-FIREWALL, the canaries, KUBE-MARK-MASQ, ...) and the portmap plugin's (CNI-*); the
# jumps to them first, then the chains.
drop_leftover_chains() {
    chains=$("$1" -w -t "$2" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[^ ]*\|CNI-[^ ]*\)$/\1/p')
    [ -n "$chains" ] || return 0
    for c in $chains; do
        "$1" -w -t "$2" -S 2>/dev/null | grep -- "-j $c\$" | sed 's/^-A/-D/' |
            while read -r rule; do
                eval "$1 -w -t $2 $rule" 2>/dev/null || true
            done
    done
    for c in $chains; do "$1" -w -t "$2" -F "$c" 2>/dev/null || true; done
    for c in $chains; do "$1" -w -t "$2" -X "$c" 2>/dev/null || true; done
}
