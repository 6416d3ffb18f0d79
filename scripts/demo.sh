#!/bin/sh
# The demo: build, install the units for a user manager, point the components at stand-ins,
# run `ImageServing start` and `ImageServing status`.
#
#   scripts/demo.sh          bring the demo stack up (and leave it running)
#   scripts/demo.sh stop     stop it and remove everything the demo made
#
# Where the machine runs no systemd user manager (PID 1 is not systemd, as in containers and
# CI), the demo boots a private `systemd --user` in its own mount namespace and cgroup; that
# needs root. State lives in $IMAGESERVING_DEMO_DIR (default /tmp/imageserving-demo).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/deps.sh" demo
demo=${IMAGESERVING_DEMO_DIR:-/tmp/imageserving-demo}
cg=imageserving-demo
ports="18080 27345 27346"

private_env() {
    export HOME="$demo/home" XDG_RUNTIME_DIR="$demo/rt" XDG_CONFIG_HOME="$demo/config" \
        XDG_DATA_HOME="$demo/data" DBUS_SESSION_BUS_ADDRESS="unix:path=$demo/rt/bus"
}

have_user_manager() {
    [ -d /run/systemd/system ] && systemctl --user show-environment >/dev/null 2>&1
}

stop_demo() {
    if [ -f "$demo/env.sh" ]; then
        . "$demo/env.sh"
        "$demo/home/.local/bin/ImageServing" --user stop || true
        # cgroup.kill exists in the unified (v2) hierarchy, which holds every process.
        [ -d "/sys/fs/cgroup/unified/$cg" ] && echo 1 >"/sys/fs/cgroup/unified/$cg/cgroup.kill" || true
        sleep 0.3
        for h in unified systemd memory pids; do
            [ -d "/sys/fs/cgroup/$h/$cg" ] && find "/sys/fs/cgroup/$h/$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        done
        rm -rf "$demo"
        echo "demo stopped and removed"
    elif have_user_manager; then
        ImageServing --user stop
    else
        echo "no demo is running"
    fi
}

if [ "${1:-}" = stop ]; then
    stop_demo
    exit 0
fi

echo "== building"
CARGO_TERM_QUIET=true "$here/packaging/build.sh"
bin="$here/target/release"

if have_user_manager; then
    echo "== using your systemd user manager"
else
    [ "$(id -u)" = 0 ] || { echo "demo.sh: no systemd user manager here; run as root to boot a private one" >&2; exit 4; }
    [ -f "$demo/env.sh" ] && stop_demo
    echo "== booting a private systemd --user manager (no usable one on this machine)"
    mkdir -p "$demo/rt" "$demo/home" "$demo/config/systemd/user" "$demo/data/systemd/user" "$demo/harness"
    chmod 700 "$demo/rt"
    printf '[Unit]\nDescription=demo\nWants=dbus.socket\n' >"$demo/harness/imageserving-demo.target"
    printf '[Socket]\nListenStream=%%t/bus\n' >"$demo/harness/dbus.socket"
    printf '[Unit]\nRequires=dbus.socket\n[Service]\nType=notify\nNotifyAccess=main\nExecStart=/usr/bin/dbus-daemon --session --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n' >"$demo/harness/dbus.service"
    for t in basic sockets shutdown default exit; do printf '[Unit]\nDescription=%s\n' "$t" >"$demo/harness/$t.target"; done
    private_env
    {
        echo "export HOME='$HOME' XDG_RUNTIME_DIR='$XDG_RUNTIME_DIR' XDG_CONFIG_HOME='$XDG_CONFIG_HOME'"
        echo "export XDG_DATA_HOME='$XDG_DATA_HOME' DBUS_SESSION_BUS_ADDRESS='$DBUS_SESSION_BUS_ADDRESS'"
        echo "export PATH='$HOME/.local/bin':\$PATH"
    } >"$demo/env.sh"
    for h in unified systemd memory pids; do
        [ -d "/sys/fs/cgroup/$h" ] && mkdir -p "/sys/fs/cgroup/$h/$cg"
    done
    SYSTEMD_UNIT_PATH="$XDG_CONFIG_HOME/systemd/user:$XDG_DATA_HOME/systemd/user:$demo/harness" \
        setsid sh -c "for h in unified systemd memory pids; do [ -d /sys/fs/cgroup/\$h/$cg ] && echo \$\$ >/sys/fs/cgroup/\$h/$cg/cgroup.procs; done
            exec unshare -m --propagation private sh -c 'mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec /lib/systemd/systemd --user --unit=imageserving-demo.target'" \
        </dev/null >"$demo/manager.log" 2>&1 &
    i=0
    until busctl --user get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState 2>/dev/null | grep -qE 'running|degraded'; do
        i=$((i + 1)); [ $i -lt 300 ] || { echo "demo.sh: the private manager did not start; see $demo/manager.log" >&2; exit 1; }
        sleep 0.05
    done
fi

echo "== installing with packaging/install.sh --user"
sh "$here/packaging/install.sh" --user --from "$bin" --no-reload
set -- $ports
i=0
for unit in platform image svg; do
    i=$((i + 1)); eval port=\$$i
    mkdir -p "${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/imageserving-$unit.service.d"
    if [ $unit = platform ]; then path=/is/image probe="http://127.0.0.1:$port/is/image"; else path=/ probe="tcp://127.0.0.1:$port"; fi
    # ps and svg are JVMs: they exit 143 on SIGTERM (the units' SuccessExitStatus=143).
    if [ $unit = image ]; then jvm=""; else jvm="--term-exit 143"; fi
    cat >"${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/imageserving-$unit.service.d/50-demo.conf" <<CONF
# Demo: a stand-in instead of the vendor binary.
[Service]
ExecStart=
ExecStart=$bin/imageserving-standin --port $port --path $path --start-delay 1 --hold-mib $((8 * i)) $jvm
Environment=IMAGESERVING_PROBE=$probe
CONF
done
# The stand-ins (and, with a private manager, the bus socket and the supervisor) may live
# under /tmp, which the units' PrivateTmp= hides; a manager that is not PID 1 here cannot
# remount /proc for ProtectKernelTunables=/ProtectKernelLogs=. Every other restriction stays.
for unit in supervisor platform image svg; do
    d="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/imageserving-$unit.service.d"
    mkdir -p "$d"
    {
        printf '# Demo: paths under /tmp stay visible.\n[Service]\nPrivateTmp=no\n'
        [ -f "$demo/env.sh" ] && printf 'ProtectKernelTunables=no\nProtectKernelLogs=no\n'
    } >"$d/40-demo.conf"
done
busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager Reload

IS="$HOME/.local/bin/ImageServing"
echo "== $IS --user start"
"$IS" --user start
echo "== $IS --user status"
"$IS" --user status

echo
if [ -f "$demo/env.sh" ]; then
    echo "The demo stack runs under a private systemd manager. To use it from your shell:"
    echo "    . $demo/env.sh && ImageServing --user status"
fi
echo "Stop and remove the demo with: scripts/demo.sh stop"
