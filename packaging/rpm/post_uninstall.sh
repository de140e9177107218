# %postun of doca-socket-relay. $1: 0 when the package is erased, 1 or more on upgrade (this runs
# from the old package after the new one is in place).
NAME=doca-socket-relay

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        # Upgrade: restart the running instances on the new binary; stopped ones stay stopped.
        systemctl try-restart "$NAME@*.service" >/dev/null 2>&1 || :
    else
        systemctl reset-failed "$NAME@*.service" "$NAME@*.socket" >/dev/null 2>&1 || :
    fi
fi
# Kept on erase: instance configs and keys in /etc/doca-socket-relay (the directory is removed
# only if empty) and the system user.
if [ "$1" -eq 0 ]; then
    rmdir "/etc/$NAME" 2>/dev/null || :
fi
exit 0
