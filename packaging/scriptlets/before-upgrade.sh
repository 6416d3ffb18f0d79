# Before an upgrade unpacks the new files (deb preinst, rpm %pre): remember the component
# units as they are, so that after-upgrade.sh can tell which ones the upgrade changed. The
# file also marks the transaction as an upgrade for rpm's %posttrans.
if [ -d /run/systemd/system ]; then
    : >/run/imageserving-upgrade.md5sums
    for imageserving_dir in /usr/lib/systemd/system /lib/systemd/system; do
        [ -f "$imageserving_dir/imageserving-image.service" ] && break
    done
    (cd "$imageserving_dir" 2>/dev/null &&
        md5sum imageserving-platform.service imageserving-image.service imageserving-svg.service \
            >/run/imageserving-upgrade.md5sums 2>/dev/null) || :
fi
