#!/bin/sh
# Install ImageServing, the Server Supervisor and the units from units/ (their only copy),
# with the supervisor's path filled in. Used by hand, by the tests and by the packages.
#
#   packaging/install.sh [--user] [--prefix DIR] [--unit-dir DIR] [--destdir DIR]
#                        [--from DIR] [--units-only] [--no-reload]
set -eu

usage() {
    cat <<'USAGE'
Usage: packaging/install.sh [OPTIONS]

Install the ImageServing command, the Server Supervisor and the systemd units.

  --user           install for your own user manager (systemctl --user); binaries go to
                   ~/.local, units to ${XDG_DATA_HOME:-$HOME/.local/share}/systemd/user
  --prefix DIR     where binaries go: DIR/bin and DIR/libexec/imageserving
                   (default /usr/local, or ~/.local with --user)
  --unit-dir DIR   where units go (default /etc/systemd/system, or the user unit dir)
  --destdir DIR    stage everything under DIR (for packages); implies --no-reload
  --from DIR       where the built binaries are (default: target/release of this tree)
  --units-only     install the units only (their paths still point at --prefix)
  --no-reload      do not ask the manager to reload its units afterwards
  -h, --help       this text
USAGE
}

die() { echo "install.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "$0")/.." && pwd)
user=0 prefix="" unit_dir="" destdir="" from="$here/target/release" reload=1 units_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --user) user=1 ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift ;;
        --unit-dir) [ $# -ge 2 ] || die "--unit-dir needs a directory"; unit_dir=$2; shift ;;
        --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; destdir=$2; reload=0; shift ;;
        --from) [ $# -ge 2 ] || die "--from needs a directory"; from=$2; shift ;;
        --no-reload) reload=0 ;;
        --units-only) units_only=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1'; see --help" ;;
    esac
    shift
done

if [ "$user" = 1 ]; then
    : "${HOME:?install.sh --user needs HOME}"
    [ -n "$prefix" ] || prefix="$HOME/.local"
    [ -n "$unit_dir" ] || unit_dir="${XDG_DATA_HOME:-$HOME/.local/share}/systemd/user"
    scope=--user
else
    [ -n "$prefix" ] || prefix=/usr/local
    [ -n "$unit_dir" ] || unit_dir=/etc/systemd/system
    scope=--system
fi
case "$prefix" in /*) ;; *) die "--prefix must be an absolute path" ;; esac

bindir="$prefix/bin"
libexecdir="$prefix/libexec/imageserving"
if [ "$units_only" = 0 ]; then
    for bin in ImageServing imageserving-supervisor; do
        [ -x "$from/$bin" ] || die "$from/$bin not found: build it first with 'cargo build --release'"
    done
    install -d "$destdir$bindir" "$destdir$libexecdir"
    install -m 0755 "$from/ImageServing" "$destdir$bindir/ImageServing"
    ln -sf ImageServing "$destdir$bindir/imageserving"
    install -m 0755 "$from/imageserving-supervisor" "$destdir$libexecdir/imageserving-supervisor"
fi
install -d "$destdir$unit_dir"

for unit in "$here"/units/*.service "$here"/units/*.socket "$here"/units/*.target; do
    name=$(basename "$unit")
    if [ "$user" = 1 ]; then
        # The user variant, for a manager that runs as an unprivileged user:
        # - default.target stands for multi-user.target;
        # - every unit runs as that user (no User=/Group=/DynamicUser=);
        # - PrivateUsers=yes: an unprivileged manager can drop the capability bounding set
        #   and build the mount namespaces of ProtectSystem=, PrivateTmp=, PrivateDevices=
        #   and the rest only inside a user namespace of the unit's own;
        # - no ProtectKernelLogs=: its mounts over /proc/kmsg and /dev/kmsg fail inside that
        #   user namespace (status 226/NAMESPACE). The user has no access to the kernel log
        #   anyway (dmesg_restrict, /dev/kmsg is root's).
        sed -e "s|@LIBEXECDIR@|$libexecdir|g" -e "s|@BINDIR@|$bindir|g" -e 's|@SCOPE@|--user|g' \
            -e 's|^WantedBy=multi-user.target$|WantedBy=default.target|' \
            -e '/^ProtectKernelLogs=yes$/d' -e '/^PrivateUsers=yes$/d' \
            -e '/^# System scope only/,/^# End of system scope only.$/d' \
            -e '/^User=/d' -e '/^Group=/d' -e '/^SupplementaryGroups=/d' -e '/^DynamicUser=yes$/d' \
            -e 's|^NoNewPrivileges=yes$|NoNewPrivileges=yes\nPrivateUsers=yes|' "$unit"
    else
        sed -e "s|@LIBEXECDIR@|$libexecdir|g" -e "s|@BINDIR@|$bindir|g" -e 's|@SCOPE@|--system|g' "$unit"
    fi >"$destdir$unit_dir/$name.tmp"
    chmod 0644 "$destdir$unit_dir/$name.tmp"
    mv "$destdir$unit_dir/$name.tmp" "$destdir$unit_dir/$name"
done

if [ "$units_only" = 0 ]; then
    echo "installed ImageServing to $destdir$bindir, the supervisor to $destdir$libexecdir, units to $destdir$unit_dir"
else
    echo "installed the units to $destdir$unit_dir"
fi
if [ "$reload" = 1 ]; then
    if systemctl "$scope" daemon-reload 2>/dev/null; then
        echo "reloaded the $scope manager; start the stack with: ImageServing${user:+}$( [ "$user" = 1 ] && echo ' --user') start"
    else
        echo "note: could not reload the ${scope#--} manager; run 'systemctl $scope daemon-reload' before 'ImageServing start'"
    fi
fi
