# Shared by the env/*.sh scripts (POSIX sh): logging, bounded waits, config templates and
# package installs that `env/uninstall.sh` can undo. Callers set $tag (the prefix of their
# messages) and source env/defaults.sh first.
# shellcheck shell=sh

# Packages the set-up installed (one per line), so that uninstall removes exactly those.
MINIMALDASK_STATE=${MINIMALDASK_STATE:-/var/lib/minimaldask}
installed_packages=$MINIMALDASK_STATE/installed-packages
apt_log=${apt_log:-${TMPDIR:-/tmp}/minimaldask-apt.log}

say() { printf '%s: %s\n' "${tag:-env}" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "${tag:-env}" "$*" >&2
    exit 1
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND until it succeeds; on timeout say what
# did not come up and return 1.
wait_for() {
    seconds=$1 what=$2
    shift 2
    deadline=$(($(date +%s) + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            say "$what not ready after ${seconds}s"
            return 1
        fi
        sleep 0.5
    done
}

# render TEMPLATE: print TEMPLATE with every @name@ replaced by the value of the shell
# variable `name` (config files stay files in their own syntax, not heredocs in a script).
# A placeholder whose variable is unset is an error: a misspelt one never reaches a daemon.
# Values are single lines, taken literally (no sed metacharacter is interpreted).
render() {
    [ -f "$1" ] || die "render: no template $1"
    _render_sed=""
    for _render_name in $(grep -o '@[A-Za-z_][A-Za-z0-9_]*@' "$1" | tr -d @ | sort -u); do
        eval "[ -n \"\${$_render_name+set}\" ]" || die "render $1: @$_render_name@ but \$$_render_name is not set"
        eval "_render_value=\$$_render_name"
        [ "$(printf '%s\n' "$_render_value" | wc -l)" -eq 1 ] || die "render $1: \$$_render_name is not one line"
        _render_value=$(printf '%s\n' "$_render_value" | sed 's/[\\|&]/\\&/g')
        _render_sed="${_render_sed}s|@$_render_name@|$_render_value|g
"
    done
    sed "$_render_sed" "$1"
}

# run_locked SECONDS LOCK COMMAND...: run COMMAND holding the file lock LOCK (flock -o, so
# that daemons it starts do not inherit the lock), waiting at most SECONDS for it; then exit
# with COMMAND's status.
run_locked() {
    seconds=$1 lock=$2
    shift 2
    status=0
    flock -w "$seconds" -E 75 -o "$lock" "$@" || status=$?
    [ "$status" -ne 75 ] || die "$lock is still held after ${seconds}s by another run (a hung up, down or build?)"
    exit "$status"
}

# pids_running PATTERN: processes whose command line matches the glob PATTERN
# (space-separated arguments).
pids_running() {
    for p in /proc/[0-9]*; do
        args=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        # shellcheck disable=SC2254  # PATTERN is a glob on purpose
        case $args in $1) echo "${p#/proc/}" ;; esac
    done
}

is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }

installed_package_names() { dpkg-query -W -f '${db:Status-Status} ${Package}\n' 2>/dev/null | sed -n 's/^installed //p' | sort; }

# apt_get ARGS...: apt-get -y -qq ARGS, logged to $apt_log, with no service started or stopped
# by the packages' maintainer scripts (there is no init system to ask, and the set-up runs
# its daemons itself).
apt_get() {
    policy=/usr/sbin/policy-rc.d
    # The host's own policy, if it has one, is put back afterwards.
    if [ -e "$policy" ]; then mv "$policy" "$policy.minimaldask-saved"; fi
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get -y -qq "$@" >>"$apt_log" 2>&1 || status=$?
    rm -f "$policy"
    if [ -e "$policy.minimaldask-saved" ]; then mv "$policy.minimaldask-saved" "$policy"; fi
    return "$status"
}

# apt_install PKG...: install what is missing (no services started by postinst scripts) and
# record every package this added, dependencies included. Log: $apt_log.
apt_install() {
    missing=""
    for pkg in "$@"; do
        dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing="$missing $pkg"
    done
    [ -n "$missing" ] || return 0
    is_debian || die "cannot install$missing: not a Debian host; install them by hand"
    [ "$(id -u)" = 0 ] || die "installing$missing needs root"
    say "installing$missing (log: $apt_log)"
    mkdir -p "$MINIMALDASK_STATE"
    before=$(installed_package_names)
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    if ! apt_get install --no-install-recommends $missing; then
        apt-get update -qq >>"$apt_log" 2>&1
        # shellcheck disable=SC2086
        apt_get install --no-install-recommends $missing || die "apt-get install$missing failed; see $apt_log"
    fi
    printf '%s\n' "$before" >"$MINIMALDASK_STATE/.before"
    installed_package_names | comm -13 "$MINIMALDASK_STATE/.before" - >>"$installed_packages"
    rm -f "$MINIMALDASK_STATE/.before"
}
