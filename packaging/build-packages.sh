#!/bin/sh
# Build every package the tests use, into target/packages/:
#   packaging/build-packages.sh
# Two builds of this tree as a .deb and as an .rpm (revisions 1 and 2), so that the
# booted-system tests can upgrade from one to the other.
set -eu
cd "$(dirname "$0")/.."
for revision in 1 2; do
    packaging/build-deb.sh "$revision" >/dev/null
    packaging/build-rpm.sh "$revision" >/dev/null
done
ls target/packages/
