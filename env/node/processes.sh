# shellcheck shell=sh disable=SC2154  # $run, $logs: set by env/k8s-node.sh, which sources this
# The node's daemons (containerd, kubelet, kube-proxy, CoreDNS): started in the background in
# sessions of their own, one pid file each in $run, one log each in $logs.

pid_alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start NAME COMMAND...: run COMMAND in the background (own session), log to $logs/NAME.log;
# nothing when NAME already runs.
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

# stop NAME: SIGTERM, then SIGKILL after 10 s.
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

# fail_with_logs MESSAGE NAME...: the last lines of the logs of NAME..., then die with MESSAGE.
fail_with_logs() {
    message=$1
    shift
    for f in "$@"; do
        [ -f "$logs/$f.log" ] || continue
        say "--- last lines of $logs/$f.log"
        tail -n 15 "$logs/$f.log" >&2
    done
    die "$message"
}
