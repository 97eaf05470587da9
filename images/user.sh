#!/bin/sh
# The image user, and what it may write: the same set-up for every image, so that the image
# runs both as its own user (UID 1000) and as any UID in group 0, the way OpenShift runs
# every container (`docker run --user 1000650000:0`, a pod whose runAsUser the platform
# assigns), with no passwd entry for that UID.
# Shared by every image; bind-mounted into the build (like strip.sh), so it never lands in a
# layer itself. Run it as root in each RUN step that writes the DIRs (the last one included):
# it changes only what that step added or changed.
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
# Only what is not as wanted yet: a file chowned or chmodded is copied whole into the layer of
# the RUN that does it, so a venv handed over in an earlier layer costs nothing a second time.
# chown -h: a venv's bin/python is a link to the system's Python, which stays root's.
for dir in "$home" "$@"; do
    find "$dir" \( ! -user "$uid" -o ! -group 0 \) -exec chown -h "$uid:0" {} +
    find "$dir" ! -type l \( -perm -0400 ! -perm -0040 -o ! -perm -0400 -perm -0040 \
        -o -perm -0200 ! -perm -0020 -o ! -perm -0200 -perm -0020 \
        -o -perm -0100 ! -perm -0010 -o ! -perm -0100 -perm -0010 \) -exec chmod g=u {} +
    find "$dir" -type d ! -perm -2000 -exec chmod g+s {} +
done
