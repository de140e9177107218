# %preun of doca-socket-relay. $1: 0 when the package is erased, 1 or more on upgrade.
# On erase: stop every socket, instance and the target, and disable them all while the unit files
# still exist. Upgrades leave the instances running (%postun restarts them).
NAME=doca-socket-relay

if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop "$NAME@*.socket" "$NAME@*.service" "$NAME.target" >/dev/null 2>&1 || :
    fi
    if [ -d /etc/systemd/system ]; then
        find /etc/systemd/system -type l \( -path "*.wants/$NAME@*" -o -path "*.wants/$NAME.target" \) \
            -exec rm -f {} + 2>/dev/null || :
        rmdir "/etc/systemd/system/$NAME.target.wants" 2>/dev/null || :
    fi
fi
exit 0
