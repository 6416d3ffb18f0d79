#!/bin/bash
# The packages' round trip, run by CI on a disposable machine (it installs and removes
# packages on this machine, as root):
#   - build the .deb (two builds, for an upgrade) and the .rpm;
#   - lintian and rpmlint: no errors, no warnings without a reason in an override file;
#   - install the .deb: every file lands, the account exists, the target is enabled,
#     `ImageServing --version`, `man ImageServing` and the bash completion work, and
#     `systemd-analyze verify` is clean on the installed units;
#   - upgrade to the second build; remove; purge: nothing left but the account (policy);
#   - the .rpm: contents and scriptlets against the same list; installed into a throw-away
#     root.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
fail() { echo "check.sh: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "build"
packaging/build-deb.sh 1 >/dev/null
packaging/build-deb.sh 2 >/dev/null
packaging/build-rpm.sh 1 >/dev/null
deb1=target/packages/imageserving_${version}-1_${arch}.deb
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
units="imageserving.target imageserving-supervisor.service imageserving-platform.service imageserving-image.service imageserving-svg.service"
expected_common="/usr/bin/ImageServing /usr/bin/imageserving /usr/libexec/imageserving/imageserving-supervisor
/usr/lib/sysusers.d/imageserving.conf /usr/share/polkit-1/rules.d/50-imageserving.rules
/usr/share/man/man1/ImageServing.1.gz /usr/share/man/man1/imageserving.1.gz
/usr/share/man/man1/ImageServing-start.1.gz /usr/share/man/man1/ImageServing-stop.1.gz
/usr/share/man/man1/ImageServing-restart.1.gz /usr/share/man/man1/ImageServing-status.1.gz
/usr/share/bash-completion/completions/ImageServing /usr/share/fish/vendor_completions.d/ImageServing.fish"
for u in $units; do expected_common="$expected_common /usr/lib/systemd/user/$u"; done

step "install $deb1"
apt-get install -y -qq "./$deb1" >/dev/null
for f in $expected_common /usr/share/zsh/vendor-completions/_ImageServing "$presetdir/50-imageserving.preset"; do
    [ -e "$f" ] || fail "$f did not land"
done
for u in $units; do [ -f "$unitdir/$u" ] || fail "$unitdir/$u did not land"; done
getent passwd imageserving >/dev/null || fail "the imageserving account was not created"
[ -L /etc/systemd/system/multi-user.target.wants/imageserving.target ] || fail "imageserving.target is not enabled"
ImageServing --version | grep -qx "ImageServing $version" || fail "ImageServing --version: $(ImageServing --version)"
imageserving --version >/dev/null || fail "the imageserving link does not work"
man -w ImageServing >/dev/null || fail "man ImageServing finds no page"
man ImageServing 2>/dev/null | grep -q "imageserving.target" || fail "man ImageServing does not render"
bash -c '. /usr/share/bash-completion/completions/ImageServing && complete -p ImageServing' | grep -q ImageServing ||
    fail "the bash completion does not load"
COMP_OUT=$(bash -c '. /usr/share/bash-completion/completions/ImageServing
    COMP_WORDS=(ImageServing rest); COMP_CWORD=1; _ImageServing ImageServing rest ImageServing; echo "${COMPREPLY[*]}"')
[[ " $COMP_OUT " == *" restart "* ]] || fail "bash completion of 'ImageServing rest' gave: $COMP_OUT"

step "systemd-analyze verify"
# The components run the vendor's programs; stand in for them so that verify can check
# the units as they would load on a configured host.
vendor=/usr/local/scene7/ImageServing/bin
made_vendor=0
if [ ! -e "$vendor" ]; then
    made_vendor=1
    mkdir -p "$vendor"
    for p in PlatformServer ImageServer SvgServer; do install -m 0755 target/release/imageserving-standin "$vendor/$p"; done
fi
verify=$(cd / && systemd-analyze verify --man=no "$unitdir"/imageserving*.service "$unitdir/imageserving.target" 2>&1) || {
    echo "$verify"; fail "systemd-analyze verify failed"; }
[ -z "$verify" ] || { echo "$verify"; fail "systemd-analyze verify printed the lines above"; }
[ "$made_vendor" = 0 ] || rm -rf /usr/local/scene7

step "upgrade to $deb2"
apt-get install -y -qq "./$deb2" >/dev/null
dpkg-query -W -f='${Version}' imageserving | grep -qx "${version}-2" || fail "not upgraded"
[ -L /etc/systemd/system/multi-user.target.wants/imageserving.target ] || fail "upgrade lost the enablement"
ImageServing --version >/dev/null

step "remove and purge"
apt-get remove -y -qq imageserving >/dev/null
for f in /usr/bin/ImageServing /usr/libexec/imageserving "$unitdir/imageserving.target"; do
    [ ! -e "$f" ] || fail "$f left after remove"
done
apt-get purge -y -qq imageserving >/dev/null
left=$(find /etc /lib/systemd /usr/lib/systemd /usr/bin /usr/libexec /usr/share /var/lib/systemd \
    -name '*imageserving*' -not -path '*/target/*' 2>/dev/null || true)
[ -z "$left" ] || { echo "$left"; fail "files left after purge"; }
dpkg-query -W imageserving >/dev/null 2>&1 && fail "the package is still known to dpkg"
getent passwd imageserving >/dev/null || fail "the account should stay (system accounts are kept, Debian policy 9.2.2)"

step "rpm contents and scriptlets"
listing=$(rpm -qlp "$rpm1")
for f in $expected_common /usr/share/zsh/site-functions/_ImageServing /usr/lib/systemd/system-preset/50-imageserving.preset; do
    grep -qx "$f" <<<"$listing" || fail "$f missing from the rpm"
done
for u in $units; do grep -qx "/usr/lib/systemd/system/$u" <<<"$listing" || fail "$u missing from the rpm"; done
scripts=$(rpm -qp --scripts "$rpm1")
grep -q 'systemctl --no-reload preset imageserving.target' <<<"$scripts" || fail "no preset in %post"
grep -q 'disable --now imageserving.target' <<<"$scripts" || fail "no disable --now in %preun"
grep -q 'try-restart imageserving.target' <<<"$scripts" || fail "no try-restart in %postun"
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
