#!/bin/bash
# The packages' static checks, run by CI:
#   - build the .deb and the .rpm (two builds each, for the upgrade tests);
#   - lintian and rpmlint: no errors, no warnings without a reason in an override file;
#   - the .rpm: contents and scriptlets against the list of files; installed into a
#     throw-away root.
# What the packages do when installed, upgraded and removed is tested on a booted system,
# where their scriptlets act (tests/integration/booted/), not on this machine, where systemd
# is not running and the image's policy-rc.d refuses every service action.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
fail() { echo "check.sh: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "build"
packaging/build-packages.sh >/dev/null
deb2=target/packages/imageserving_${version}-2_${arch}.deb
rpm1=$(ls target/packages/imageserving-"${version}"-1.*.rpm)

step "lintian"
lintian --fail-on error,warning --suppress-tags-from-file /dev/null "$deb2"
step "rpmlint"
out=$(rpmlint -c packaging/rpm/rpmlint.toml "$rpm1" 2>&1) || { echo "$out"; fail "rpmlint failed"; }
echo "$out" | grep -E ': (E|W): ' && fail "rpmlint reported the lines above"
echo "$out" | tail -n 1

unitdir=$(pkg-config --variable=systemdsystemunitdir systemd)
presetdir=$(pkg-config --variable=systemdsystempresetdir systemd)
units="imageserving.target imageserving-supervisor.service imageserving-platform.service imageserving-image.service imageserving-svg.service imageserving-metrics.socket imageserving-metrics@.service imageserving-alert@.service imageserving-platform.socket imageserving-image.socket imageserving-svg.socket"
expected_common="/usr/bin/ImageServing /usr/bin/imageserving /usr/libexec/imageserving/imageserving-supervisor
/usr/lib/sysusers.d/imageserving.conf /usr/share/polkit-1/rules.d/50-imageserving.rules
/usr/share/imageserving/prometheus/imageserving.rules.yml /usr/share/imageserving/tomcat/imageserving-tomcat.jar
/usr/share/cockpit/imageserving/manifest.json /usr/share/cockpit/imageserving/index.html
/usr/share/cockpit/imageserving/imageserving.js /usr/share/cockpit/imageserving/imageserving.css
/usr/share/man/man1/ImageServing.1.gz /usr/share/man/man1/imageserving.1.gz
/usr/share/man/man1/ImageServing-start.1.gz /usr/share/man/man1/ImageServing-stop.1.gz
/usr/share/man/man1/ImageServing-restart.1.gz /usr/share/man/man1/ImageServing-status.1.gz
/usr/share/bash-completion/completions/ImageServing /usr/share/fish/vendor_completions.d/ImageServing.fish"
for u in $units; do expected_common="$expected_common /usr/lib/systemd/user/$u"; done

step "deb contents and scriptlets"
listing=$(dpkg-deb -c "$deb2" | awk '{print $6}' | sed 's|^\.||')
for f in $expected_common /usr/share/zsh/vendor-completions/_ImageServing "$presetdir/50-imageserving.preset"; do
    grep -qx "$f" <<<"$listing" || fail "$f missing from the deb"
done
for u in $units; do grep -qx "$unitdir/$u" <<<"$listing" || fail "$u missing from the deb"; done
ctl=$(mktemp -d)
dpkg-deb -e "$deb2" "$ctl"
grep -q 'try-restart imageserving-supervisor.service' "$ctl/postinst" || fail "no try-restart of the supervisor in postinst"
grep -q 'md5sum imageserving-platform.service' "$ctl/preinst" || fail "preinst does not remember the component units"
grep -q 'try-restart imageserving.target' "$ctl/postinst" && fail "an upgrade must not restart the target (and with it the components)"
grep -Eq '(restart|stop).*imageserving-(platform|image|svg)\.socket' "$ctl/postinst" "$ctl/preinst" && fail "an upgrade must never stop or restart a component's socket"
rm -rf "$ctl"

step "rpm contents and scriptlets"
listing=$(rpm -qlp "$rpm1")
for f in $expected_common /usr/share/zsh/site-functions/_ImageServing /usr/lib/systemd/system-preset/50-imageserving.preset; do
    grep -qx "$f" <<<"$listing" || fail "$f missing from the rpm"
done
for u in $units; do grep -qx "/usr/lib/systemd/system/$u" <<<"$listing" || fail "$u missing from the rpm"; done
scripts=$(rpm -qp --scripts "$rpm1")
grep -q 'systemctl --no-reload preset imageserving.target' <<<"$scripts" || fail "no preset in %post"
grep -q 'disable --now imageserving-metrics.socket imageserving.target' <<<"$scripts" || fail "no disable --now in %preun"
grep -q 'try-restart imageserving-supervisor.service' <<<"$scripts" || fail "no try-restart of the supervisor in %posttrans"
grep -q 'try-restart imageserving.target' <<<"$scripts" && fail "an upgrade must not restart the target (and with it the components)"
grep -q 'systemd-sysusers' <<<"$scripts" || fail "no account creation in %pre"

step "rpm into a throw-away root"
root=$(mktemp -d)
rpm --root "$root" --initdb
rpm --root "$root" -i --nodeps --noscripts "$rpm1"
[ -x "$root/usr/bin/ImageServing" ] || fail "the rpm did not install into $root"
rpm --root "$root" -V --nodeps imageserving || fail "rpm -V reports changed files"
"$root/usr/bin/ImageServing" --version >/dev/null
rm -rf "$root"

echo "packages: all checks passed"
