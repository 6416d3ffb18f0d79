#!/bin/sh
# Build the RPM:
#   packaging/build-rpm.sh [RELEASE]   ->  target/packages/imageserving-VERSION-RELEASE.ARCH.rpm
# Needs: cargo, rpmbuild (Debian's rpm package).
set -eu
cd "$(dirname "$0")/.."
release=${1:-1}
. packaging/prepare.sh

rm -rf target/rpmbuild
rpmbuild -bb --quiet \
    --define "_topdir $PWD/target/rpmbuild" \
    --define "srcdir $PWD" \
    --define "pkg_version $version" \
    --define "pkg_release $release" \
    packaging/rpm/imageserving.spec
mkdir -p target/packages
mv target/rpmbuild/RPMS/*/imageserving-"$version-$release".*.rpm target/packages/
ls target/packages/imageserving-"$version-$release".*.rpm
