#!/bin/sh
# The whole test suite, as CI runs it (as root: the tests boot private systemd managers and
# containers with systemd as PID 1):
#   scripts/test.sh            every test
#   scripts/test.sh booted     the booted-system stage only (any cargo test filter works)
# It installs what is missing (scripts/deps.sh; without root it names the apt-get line and
# stops), makes the Debian 13 root the booted stage also boots (scripts/debian13-root.sh, a
# few minutes once, then cached), builds the packages the booted-system stage installs
# (packaging/build-packages.sh), then runs cargo test.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh test
scripts/debian13-root.sh
packaging/build-packages.sh >/dev/null
exec cargo test --locked "$@"
