# After an upgrade (deb postinst configure, rpm %posttrans): restart only the Server
# Supervisor, the one daemon this package ships, so that it runs the new binary. The
# components run the vendor's programs, which this package does not change: they keep
# serving. A try-restart leaves a stopped stack stopped. If the upgrade changed the unit of
# a running component, say so in one line and leave its restart to the operator.
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || :
    if command -v deb-systemd-invoke >/dev/null 2>&1; then
        deb-systemd-invoke try-restart imageserving-supervisor.service >/dev/null || :
    else
        systemctl try-restart imageserving-supervisor.service >/dev/null 2>&1 || :
    fi
    if [ -f /run/imageserving-upgrade.md5sums ]; then
        for imageserving_dir in /usr/lib/systemd/system /lib/systemd/system; do
            [ -f "$imageserving_dir/imageserving-image.service" ] && break
        done
        imageserving_restart=""
        for imageserving_unit in $(cd "$imageserving_dir" &&
            md5sum -c /run/imageserving-upgrade.md5sums 2>/dev/null | sed -n 's/: FAILED.*//p'); do
            systemctl is-active --quiet "$imageserving_unit" 2>/dev/null || continue
            case "$imageserving_unit" in
                imageserving-platform.service) imageserving_restart="$imageserving_restart ps" ;;
                imageserving-image.service) imageserving_restart="$imageserving_restart is" ;;
                imageserving-svg.service) imageserving_restart="$imageserving_restart svg" ;;
            esac
        done
        rm -f /run/imageserving-upgrade.md5sums
        if [ -n "$imageserving_restart" ]; then
            echo "imageserving: this upgrade changed the units of running components ($imageserving_restart ); they keep their old settings until you run 'ImageServing restart NAME' for each of them."
        fi
    fi
fi
