#!/bin/sh
# The one entrypoint of every minimaldask image (Alpine, Debian, RAPIDS).
# Runs under tini (the image's ENTRYPOINT), so the process it execs gets SIGTERM directly.
#
# Environment (see docs/ENTRYPOINT.md):
#   WORKER=true|false          start a worker instead of the scheduler (default false)
#   PORT                       scheduler port (default 8786)
#   DASHBOARD_PORT             dashboard port (default 8787 for the scheduler, random for a worker)
#   HOST                       interface to listen on (default: all of the container's)
#   DASK_SCHEDULER_ADDRESS     worker's scheduler (default tcp://$DASK_SCHEDULER_SERVICE:$PORT)
#   DASK_SCHEDULER_SERVICE     scheduler's service name (default dask-scheduler)
#   SCHEDULER_WAIT_TIMEOUT     seconds a worker waits for its scheduler to accept connections (default 300)
#   WORKER_NTHREADS            worker threads (default: the container's CPU limit)
#   WORKER_MEMORY_LIMIT        worker memory limit (default: the container's memory limit)
#   GPU_WORKER=true|false|auto the worker is `dask cuda worker` (default auto: when the image
#                              has dask-cuda and the container sees an NVIDIA GPU)
#   ARGUMENTS                  extra arguments for dask scheduler / dask worker
#   EXTRA_PIP_PACKAGES         pip packages installed at start (as the container's user)
#   EXTRA_APT_PACKAGES         Debian packages installed at start (needs root)
#   EXTRA_APK_PACKAGES         Alpine packages installed at start (needs root)
#   INSTALL_TIMEOUT            seconds allowed for each install step (default 300)
#   PYTHON_MISMATCH=refuse|allow  whether the scheduler lets in a client of another Python minor
#                              (default refuse: its pickled functions can crash the cluster)
#   MINIMALDASK_CLUSTER        the Kubernetes cluster a scheduler belongs to: it then preloads
#                              the controller (set by the manifests; docs/AUTOSCALING.md)
# Lists (ARGUMENTS, EXTRA_*_PACKAGES) are split into words at white space, never globbed.
# Any command given (docker run IMAGE python -c ...) runs instead, after the installs (and,
# with DASK_SCHEDULER_ADDRESS set, once that scheduler accepts connections).
# Runs as the image's user (UID 1000) or as any UID in group 0, with or without a passwd entry
# (OpenShift's arbitrary UIDs): group 0 may write the venv and HOME (images/user.sh).
set -euf  # -f: no globbing, so a '*' in a list stays a '*'

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() { printf 'entrypoint: error: %s\n' "$*" >&2; exit 1; }

is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

check_port() {  # check_port NAME VALUE
    if ! is_uint "$2" || [ "$2" -gt 65535 ]; then die "$1 must be a port number (0-65535), got '$2'"; fi
}

check_positive() {  # check_positive NAME VALUE
    if ! is_uint "$2" || [ "$2" -eq 0 ]; then die "$1 must be a positive integer, got '$2'"; fi
}

install_timeout=${INSTALL_TIMEOUT:-300}
check_positive INSTALL_TIMEOUT "$install_timeout"
wait_timeout=${SCHEDULER_WAIT_TIMEOUT:-300}
check_positive SCHEDULER_WAIT_TIMEOUT "$wait_timeout"
python_mismatch=${PYTHON_MISMATCH:-refuse}
case $python_mismatch in
refuse | allow) ;;
*) die "PYTHON_MISMATCH must be refuse or allow, got '$python_mismatch'" ;;
esac

run_install() {  # run_install WHAT COMMAND...: bounded in time, fails loudly
    what=$1
    shift
    log "installing $what"
    timeout "$install_timeout" "$@" >&2 && return 0
    status=$?
    # coreutils timeout exits 124; busybox's (Alpine) exits 143, the status of the killed command.
    if [ "$status" -eq 124 ] || [ "$status" -eq 143 ]; then
        die "installing $what timed out after ${install_timeout}s (INSTALL_TIMEOUT)"
    fi
    die "installing $what failed (exit $status); the container does not start half-configured"
}

install_system_packages() {  # install_system_packages VAR MANAGER PACKAGES
    var=$1 manager=$2 packages=$3
    command -v "$manager" >/dev/null 2>&1 ||
        die "$var is set but this image has no $manager; use $( [ "$manager" = apk ] && echo EXTRA_APT_PACKAGES || echo EXTRA_APK_PACKAGES) or EXTRA_PIP_PACKAGES"
    [ "$(id -u)" -eq 0 ] ||
        die "$var needs root: run the container as user 0 (docker run --user 0, or runAsUser: 0), or build an image FROM this one"
    # shellcheck disable=SC2086  # the package list is split into words on purpose
    case $manager in
    apk) run_install "$packages" apk add --no-cache $packages ;;
    apt-get)
        run_install "package lists" apt-get update -qq --error-on=any
        run_install "$packages" apt-get install -y -qq --no-install-recommends $packages
        rm -rf /var/lib/apt/lists/*
        ;;
    esac
}

[ -z "${EXTRA_APK_PACKAGES:-}" ] || install_system_packages EXTRA_APK_PACKAGES apk "$EXTRA_APK_PACKAGES"
[ -z "${EXTRA_APT_PACKAGES:-}" ] || install_system_packages EXTRA_APT_PACKAGES apt-get "$EXTRA_APT_PACKAGES"
# shellcheck disable=SC2086
[ -z "${EXTRA_PIP_PACKAGES:-}" ] ||
    run_install "$EXTRA_PIP_PACKAGES" python -m pip install --no-cache-dir --disable-pip-version-check -q $EXTRA_PIP_PACKAGES

cgroup_cpus() {  # the CPU limit rounded up, or nothing when unlimited
    if [ -r /sys/fs/cgroup/cpu.max ]; then
        read -r quota period </sys/fs/cgroup/cpu.max
    elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        read -r quota </sys/fs/cgroup/cpu/cpu.cfs_quota_us
        read -r period </sys/fs/cgroup/cpu/cpu.cfs_period_us
    else
        return 0
    fi
    is_uint "$quota" && is_uint "$period" && [ "$period" -gt 0 ] || return 0
    echo $(((quota + period - 1) / period))
}

cgroup_memory() {  # the memory limit in bytes, or nothing when unlimited
    for file in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
        [ -r "$file" ] || continue
        read -r limit <"$file"
        # cgroup v1 reports "unlimited" as a huge number (page-rounded LONG_MAX).
        is_uint "$limit" && [ "${#limit}" -lt 19 ] && echo "$limit"
        return 0
    done
}

# wait_for_scheduler ADDRESS SECONDS: until the scheduler accepts TCP connections, or one
# line naming the address and the last reason (not Dask's traceback after its own retries).
# Only Dask's TCP-based comms (tcp://, tls://, or no scheme) are checked; others go to Dask.
wait_for_scheduler() {
    log "waiting up to $2 s for the scheduler at $1"
    reason=$(python - "$1" "$2" 2>&1 <<'EOF'
import socket, sys, time
from urllib.parse import urlsplit

address, timeout = sys.argv[1], float(sys.argv[2])
url = urlsplit(address if "://" in address else "tcp://" + address)
if url.scheme not in ("tcp", "tls"):
    sys.exit(0)
try:
    host, port = url.hostname, url.port or 8786
except ValueError:
    sys.exit("not a host:port address")
deadline = time.monotonic() + timeout
while True:
    left = deadline - time.monotonic()
    try:
        socket.create_connection((host, port), timeout=min(5, max(left, 0.1))).close()
        sys.exit(0)
    except socket.gaierror as error:
        reason = f"cannot resolve {host}: {error.strerror}"
    except OSError as error:
        reason = error.strerror or str(error)
    if left <= 0:
        sys.exit(reason)
    time.sleep(min(1, left))
EOF
    ) || die "no scheduler at $1 after $2 s (SCHEDULER_WAIT_TIMEOUT): $reason"
}

gpu_worker() {  # whether the worker is a GPU worker (GPU_WORKER); dies when it must be and cannot
    gpus=$(ls /dev/nvidia[0-9]* 2>/dev/null || true)
    case ${GPU_WORKER:-auto} in
    false | 0 | no) return 1 ;;
    auto) [ -n "$gpus" ] && python -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("dask_cuda"))' ;;
    true | 1 | yes)
        python -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("dask_cuda"))' ||
            die "GPU_WORKER=$GPU_WORKER but this image has no dask-cuda; use the rapids image"
        [ -n "$gpus" ] ||
            die "GPU_WORKER=$GPU_WORKER but the container sees no NVIDIA GPU (no /dev/nvidia0): run it with --gpus, or request nvidia.com/gpu in Kubernetes"
        python -c 'import ctypes; ctypes.CDLL("libcuda.so.1")' 2>/dev/null ||
            die "GPU_WORKER=$GPU_WORKER but the NVIDIA driver library libcuda.so.1 is not visible: the NVIDIA container toolkit mounts it (NVIDIA_DRIVER_CAPABILITIES=compute)"
        ;;
    *) die "GPU_WORKER must be true, false or auto, got '$GPU_WORKER'" ;;
    esac
}

# A command given runs instead of Dask; a client of a scheduler (a batch job's runner:
# DASK_SCHEDULER_ADDRESS is set) starts once the scheduler answers, as a worker does.
if [ "$#" -gt 0 ]; then
    if [ -n "${DASK_SCHEDULER_ADDRESS:-}" ]; then
        wait_for_scheduler "$DASK_SCHEDULER_ADDRESS" "$wait_timeout"
    fi
    exec "$@"
fi

CONTROLLER=/usr/local/lib/minimaldask-controller.py
GUARD=/usr/local/lib/minimaldask-client-guard.py
# Empties OpenSSL's error queue before each TLS call (buildtools/cluster/ssl_error_queue.py):
# without it, one failed TLS connection can take down the next one to read.
SSL_ERROR_QUEUE=/usr/local/lib/minimaldask-ssl-error-queue.py
[ -r "$SSL_ERROR_QUEUE" ] || die "this image has no readable $SSL_ERROR_QUEUE"
port=${PORT:-8786}
check_port PORT "$port"
host=${HOST:-}
# shellcheck disable=SC2086  # ARGUMENTS is a list of words on purpose
set -- ${ARGUMENTS:-}

case ${WORKER:-false} in
false | 0 | no | "")
    dashboard_port=${DASHBOARD_PORT:-8787}
    check_port DASHBOARD_PORT "$dashboard_port"
    # In a Kubernetes cluster of minimaldask (the manifests set MINIMALDASK_CLUSTER), the
    # scheduler runs the controller that scales its workers and deletes an idle cluster.
    if [ -n "${MINIMALDASK_CLUSTER:-}" ]; then
        [ -r "$CONTROLLER" ] || die "MINIMALDASK_CLUSTER is set, but this image has no readable $CONTROLLER"
        set -- --preload "$CONTROLLER" "$@"
        log "the controller of cluster $MINIMALDASK_CLUSTER runs in the scheduler"
    fi
    if [ "$python_mismatch" = refuse ]; then
        [ -r "$GUARD" ] || die "this image has no readable $GUARD (PYTHON_MISMATCH=allow starts without it)"
        set -- --preload "$GUARD" "$@"
    else
        log "clients of any Python minor are let in (PYTHON_MISMATCH=allow): a function pickled on another minor can crash the cluster"
    fi
    set -- --preload "$SSL_ERROR_QUEUE" "$@"
    log "starting scheduler on ${host:-*}:$port, dashboard on ${host:-*}:$dashboard_port"
    exec dask scheduler ${host:+--host "$host"} --port "$port" --dashboard-address "$host:$dashboard_port" "$@"
    ;;
true | 1 | yes)
    dashboard_port=${DASHBOARD_PORT:-0}
    check_port DASHBOARD_PORT "$dashboard_port"
    scheduler=${DASK_SCHEDULER_ADDRESS:-tcp://${DASK_SCHEDULER_SERVICE:-dask-scheduler}:$port}
    gpu=false
    if gpu_worker; then gpu=true; fi
    # Every setting is checked before the (long) wait for the scheduler.
    nthreads=${WORKER_NTHREADS:-$(cgroup_cpus)}
    [ -z "$nthreads" ] || check_positive WORKER_NTHREADS "$nthreads"
    memory=${WORKER_MEMORY_LIMIT:-$(cgroup_memory)}
    wait_for_scheduler "$scheduler" "$wait_timeout"
    if [ "$gpu" = true ]; then
        # One worker process per visible GPU; threads and memory are per GPU, so only explicit
        # settings apply (dask-cuda's defaults: one thread, the memory shared out per GPU).
        log "starting GPU worker (dask cuda worker) for $scheduler"
        exec dask cuda worker ${host:+--host "$host"} --dashboard-address "$host:$dashboard_port" --preload "$SSL_ERROR_QUEUE" \
            ${WORKER_NTHREADS:+--nthreads "$WORKER_NTHREADS"} \
            ${WORKER_MEMORY_LIMIT:+--memory-limit "$WORKER_MEMORY_LIMIT"} "$@" "$scheduler"
    fi
    log "starting worker for $scheduler, threads: ${nthreads:-all CPUs}, memory limit: ${memory:-auto}"
    exec dask worker ${host:+--host "$host"} --dashboard-address "$host:$dashboard_port" \
        --preload "$SSL_ERROR_QUEUE" --preload-nanny "$SSL_ERROR_QUEUE" \
        ${nthreads:+--nthreads "$nthreads"} ${memory:+--memory-limit "$memory"} "$@" "$scheduler"
    ;;
*) die "WORKER must be true or false, got '$WORKER'" ;;
esac
