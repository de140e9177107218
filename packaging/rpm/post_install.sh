# %post of doca-socket-relay (cargo-generate-rpm has no %systemd_post macros; this is plain sh).
# $1: 1 on first install, 2 or more on upgrade. Nothing here may fail the transaction.
NAME=doca-socket-relay

if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$NAME.conf" || :
fi
if ! getent passwd "$NAME" >/dev/null; then
    getent group "$NAME" >/dev/null || groupadd --system "$NAME" || :
    useradd --system --gid "$NAME" --no-create-home --home-dir / \
        --shell /sbin/nologin --comment "DOCA socket relay daemon" "$NAME" || :
fi

# Instance configs and key files; created once, an existing directory is left as it is.
if [ ! -d "/etc/$NAME" ]; then
    install -d -m 0750 -o root -g "$NAME" "/etc/$NAME" || :
fi

# First install: enable the target so that enabled instances start at boot. It starts nothing itself.
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload enable "$NAME.target" >/dev/null 2>&1 || :
fi

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
