#!/bin/sh
# What the demo and the tests need from Debian's packages, in one list (also what .ci/run
# installs):
#   scripts/deps.sh demo     for scripts/demo.sh
#   scripts/deps.sh test     for scripts/test.sh (and .ci/run)
#   scripts/deps.sh bench    for scripts/bench.sh
# Run as root on Debian or a derivative, it installs what is missing (apt-get); otherwise it
# stops at once with the exact apt-get line to run.
set -eu

# The demo: a private systemd --user manager and its session bus (systemd, dbus-daemon), in
# its own mount namespace (util-linux: unshare), and the static link of ImageServing (libc6-dev).
demo="systemd dbus-daemon util-linux procps libc6-dev"
# The tests add: systemd-container (systemd-nspawn) and polkitd for the booted-system stage;
# debootstrap for its Debian 13 root; prometheus (promtool, and the server that scrapes the
# endpoint) and curl; openssh-server and socat for the fleet tests; exim4-daemon-light (an MTA
# the booted boxes deliver the alert e-mail with); debhelper, pkg-config,
# lintian, rpm, rpmlint for the packages; nodejs to evaluate the polkit rule; ansible-core
# for the Ansible collection's tests (contrib/ansible: ansible, ansible-playbook,
# ansible-galaxy, ansible-doc, ansible-test) and python3-venv for the venvs that
# ansible-lint (from PyPI) and ansible-test's sanity tests run in; tomcat10 for the booted
# stage's real Platform and SVG servers (Tomcat JVMs, as in production) and default-jdk-headless
# to build the Tomcat listener the packages ship (packaging/tomcat/build.sh); cockpit-ws,
# cockpit-bridge and cockpit-system (the web console the page lives in), chromium,
# chromium-driver and python3-selenium (the real browser that tests it). README.md's
# "Tests" says which test needs which package.
test="$demo systemd-container polkitd debootstrap prometheus curl openssh-server socat exim4-daemon-light debhelper pkg-config lintian rpm rpmlint nodejs ansible-core python3-venv tomcat10 default-jdk-headless cockpit-ws cockpit-bridge cockpit-system chromium chromium-driver python3-selenium"
# The benchmark adds the fleet tools it is measured against: pdsh, ClusterShell (clush),
# parallel-ssh (pssh).
bench="$test pdsh clustershell pssh"

case "${1:-}" in
    demo) wanted=$demo ;;
    test) wanted=$test ;;
    bench) wanted=$bench ;;
    *) echo "usage: scripts/deps.sh demo|test|bench" >&2; exit 2 ;;
esac

installed() {
    dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=""
for p in $wanted; do
    # nodejs may come from elsewhere (nvm, a tarball): what counts is a node on PATH.
    if [ "$p" = nodejs ] && command -v node >/dev/null; then
        continue
    fi
    installed "$p" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing what is missing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; } || {
        echo "could not install:$missing; run: $line" >&2
        exit 1
    }
    exit 0
fi
echo "missing packages:$missing; run as root: $line" >&2
exit 1
