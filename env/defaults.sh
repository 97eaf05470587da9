# Sourced by the env/*.sh scripts (POSIX sh): the defaults of env/defaults.env, unless the
# caller's environment already sets them. Expects $here to be the env/ directory.
# shellcheck shell=sh

# shellcheck disable=SC2034,SC2154  # value is read by the eval; $here comes from the caller
while IFS='=' read -r key value; do
    case $key in '' | \#*) continue ;; esac
    eval "[ -n \"\${$key:-}\" ] || $key=\$value"
done <"$here/defaults.env"
