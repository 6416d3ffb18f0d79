#!/bin/sh
# Build the Debian package with debhelper:
#   packaging/build-deb.sh [REVISION]   ->  target/packages/imageserving_VERSION-REVISION_ARCH.deb
# Needs: cargo, dpkg-dev, debhelper.
set -eu
cd "$(dirname "$0")/.."
revision=${1:-1}
. packaging/prepare.sh

# The tree dpkg-buildpackage works in: what the package is made of, and debian/.
work=target/deb-build/imageserving-$version
rm -rf target/deb-build
mkdir -p "$work/target/release"
cp -r units packaging "$work/"
cp target/release/ImageServing target/release/imageserving-supervisor "$work/target/release/"
cp -r target/assets "$work/target/assets"
cp -r packaging/debian "$work/debian"
# The upgrade scriptlets are shared with the rpm (packaging/scriptlets/).
for script in preinst postinst; do
    sed -e '/^#BEFORE_UPGRADE#$/{r packaging/scriptlets/before-upgrade.sh' -e 'd}' \
        -e '/^#AFTER_UPGRADE#$/{r packaging/scriptlets/after-upgrade.sh' -e 'd}' \
        "packaging/debian/imageserving.$script" >"$work/debian/imageserving.$script"
done
cp packaging/sysusers/imageserving.conf "$work/debian/imageserving.sysusers"
cat >"$work/debian/changelog" <<CHANGELOG
imageserving ($version-$revision) unstable; urgency=medium

  * Package of imageserving $version, build $revision.

 -- imageserving developers <imageserving@example.org>  $(date -R)
CHANGELOG

(cd "$work" && dpkg-buildpackage --build=binary --no-sign -us -uc >../build.log 2>&1) || {
    tail -n 40 target/deb-build/build.log >&2
    exit 1
}
mkdir -p target/packages
mv target/deb-build/imageserving_*.deb target/packages/
ls target/packages/imageserving_"$version-$revision"_*.deb
