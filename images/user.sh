#!/bin/sh
# The image user, and what it may write: the same set-up for every image, so that the image
# runs both as its own user (UID 1000) and as any UID in group 0, the way OpenShift runs
# every container (`docker run --user 1000650000:0`, a pod whose runAsUser the platform
# assigns), with no passwd entry for that UID.
# Shared by every image; bind-mounted into the build (like strip.sh), so it never lands in a
# layer itself. Run it as root in the RUN step that last writes the DIRs (a later chown or
# chmod would copy every file into a new layer).
#
# usage: user.sh UID DIR...
#
# 1. Unless UID already has a passwd entry (a base that brings its own user may create it
#    first), creates the user `dask` with that UID, its own group `dask` (GID = UID), home
#    /home/dask and shell /bin/sh (useradd, or busybox adduser on Alpine).
# 2. Creates the home /home/dask if missing, and hands it and every DIR (the venv that
#    runtime EXTRA_PIP_PACKAGES go into, scratch directories ...) to owner UID and group 0,
#    with the group's permissions equal to the owner's and every directory setgid (what is
#    created in them later stays in group 0, whichever of the two users writes it).
set -eu

[ "$#" -ge 1 ] || { echo "usage: user.sh UID DIR..." >&2; exit 2; }
uid=$1
shift
home=/home/dask

if ! cut -d: -f3 /etc/passwd | grep -qx "$uid"; then
    if command -v useradd >/dev/null 2>&1; then
        groupadd --gid "$uid" dask
        useradd --uid "$uid" --gid "$uid" --home-dir "$home" --no-create-home --shell /bin/sh dask
    else
        addgroup -g "$uid" dask
        adduser -D -H -u "$uid" -G dask -h "$home" -s /bin/sh dask
    fi
fi

mkdir -p "$home"
for dir in "$home" "$@"; do
    chown -R "$uid:0" "$dir"
    chmod -R g=u "$dir"
    find "$dir" -type d -exec chmod g+s {} +
done
