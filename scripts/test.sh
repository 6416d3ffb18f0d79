#!/bin/sh
# The whole test suite, as CI runs it (as root: the tests boot private systemd managers and
# containers with systemd as PID 1):
#   scripts/test.sh            every test
#   scripts/test.sh booted     the booted-system stage only (any cargo test filter works)
# It builds the packages the booted-system stage installs (packaging/build-packages.sh),
# then runs cargo test.
set -eu
cd "$(dirname "$0")/.."
packaging/build-packages.sh >/dev/null
exec cargo test --locked "$@"
