# Sourced by env/k8s-cluster.sh and env/k8s-node.sh (POSIX sh): the kwokctl configuration
# both control planes share. Every component binary comes from the cache (nothing is
# downloaded), everything binds to 127.0.0.1, and the Kubernetes version is the pinned one.
# usage: kwokctl_options BIN_DIR  (prints the document up to its `options:` entries, so a
# caller may append more options, then further top-level keys)
# shellcheck shell=sh

kwokctl_options() {
    cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: $KUBERNETES_VERSION
  bindAddress: 127.0.0.1
  kubeApiserverBinary: $1/kube-apiserver
  kubeControllerManagerBinary: $1/kube-controller-manager
  kubeSchedulerBinary: $1/kube-scheduler
  kubectlBinary: $1/kubectl
  kwokControllerBinary: $1/kwok
  etcdBinary: $1/etcd
  quietPull: true
EOF
}
