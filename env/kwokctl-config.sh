# Sourced by env/k8s-cluster.sh and env/k8s-node.sh (POSIX sh), after env/lib.sh: how both
# control planes configure kwokctl. Expects $here (the env/ directory), $bin (the cached
# binaries) and the pins of env/versions.env.
# shellcheck shell=sh

# kwokctl_env WORKDIR: kwokctl reads KWOK_* variables over its config: pin the ones that
# matter and drop the others, so that a caller's environment cannot swap a binary or a version.
kwokctl_env() {
    export KWOK_WORKDIR="$1"
    export KWOK_RUNTIME=binary
    unset KWOK_KUBE_VERSION KWOK_KUBE_BINARY_PREFIX KWOK_KUBECTL_BINARY \
        KWOK_KUBE_APISERVER_BINARY KWOK_KUBE_CONTROLLER_MANAGER_BINARY \
        KWOK_KUBE_SCHEDULER_BINARY KWOK_CONTROLLER_BINARY KWOK_BINARY_PREFIX \
        KWOK_ETCD_BINARY KWOK_ETCD_BINARY_TAR KWOK_ETCD_BINARY_PREFIX \
        KWOK_ETCD_VERSION 2>/dev/null || true
}

# kwokctl_config [TEMPLATE...]: print the shared configuration (env/templates/kwokctl.yaml),
# then each TEMPLATE as a further document; kwokctl merges the documents of one kind.
# shellcheck disable=SC2154 # $here: set by the sourcing script
kwokctl_config() {
    render "$here/templates/kwokctl.yaml"
    for _kwokctl_template in "$@"; do
        echo ---
        render "$_kwokctl_template"
    done
}
