#!/bin/sh
# A Debian 13 (trixie) root for the booted-system stage, made once with debootstrap from
# Debian's packages and kept in a cache directory (a few minutes the first time):
#   scripts/debian13-root.sh [DIR]     (default: /var/cache/imageserving-tests/debian13)
# The tests boot it as they boot this machine's own root (an overlay, never written), in the
# pure cgroup v2 layout that its systemd 257 requires. It holds what the package and the
# package-path tests need: systemd as init, the system bus, logind, polkitd, and the tools the
# tests run inside (useradd, setpriv, sed, journalctl, man, bash completion, curl).
set -eu
dir=${1:-${IMAGESERVING_DEBIAN13_ROOT:-/var/cache/imageserving-tests/debian13}}
packages=systemd,systemd-sysv,dbus,libpam-systemd,polkitd,passwd,util-linux,procps,login,man-db,bash-completion,curl
# Made with this list already: nothing to do. (A changed list makes it anew.)
if [ "$(cat "$dir/.complete" 2>/dev/null)" = "$packages" ]; then
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "debootstrap is missing: apt-get install debootstrap" >&2
    exit 1
}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
timeout 1200 debootstrap --variant=minbase \
    --include="$packages" \
    trixie "$dir" "$mirror" >"$dir.log" 2>&1 || {
    echo "debootstrap of Debian 13 failed; see $dir.log" >&2
    tail -n 20 "$dir.log" >&2
    exit 1
}
# No policy-rc.d, no machine-id (each boot makes its own), nothing enabled that a test
# does not start.
rm -f "$dir/usr/sbin/policy-rc.d" "$dir/etc/machine-id"
: >"$dir/etc/machine-id"
apt_clean() { rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"* ; }
apt_clean
echo "$packages" >"$dir/.complete"
