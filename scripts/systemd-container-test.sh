#!/usr/bin/env bash
# Runs the .deb under a real systemd as PID 1: a minimal Debian rootfs booted with
# systemd-nspawn, where a oneshot unit runs scripts/systemd-container-checks.sh and powers off.
#
#   bash scripts/systemd-container-test.sh [PATH.deb]    # default: target/packages/*_<arch>.deb
#
# Needs root, debootstrap and systemd-nspawn (Debian packages debootstrap, systemd-container).
# The rootfs (Debian bookworm, minbase plus systemd, systemd-sysv, dbus, socat) is built once
# with debootstrap from the Debian mirror apt uses and kept in target/systemd-ct/ (about 250 MB,
# ~1 min to build); every run boots a fresh copy of it, so runs do not see each other.
# Prints one line per check; exits non-zero if any check failed or the container did not finish.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "systemd-container-test: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, systemd-nspawn)"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn is missing (apt-get install systemd-container)"

deb=${1:-$(ls target/packages/doca-socket-relay_*_"$(dpkg --print-architecture)".deb 2>/dev/null | tail -n 1)}
[[ -f "$deb" ]] || die "no .deb found (run scripts/package.sh first, or pass its path)"

work=target/systemd-ct
cache=$work/rootfs-bookworm
# The mirror apt itself uses, so the rootfs comes from the same registry as everything else.
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
    grep -m1 '/debian/$' || echo http://deb.debian.org/debian/)
if [[ ! -f $cache/.complete ]]; then
    echo "systemd-container-test: building the rootfs in $cache (debootstrap bookworm from $mirror)"
    rm -rf "$cache" "$cache.tmp"
    mkdir -p "$work"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,socat \
        bookworm "$cache.tmp" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $work/debootstrap.log"
    mv "$cache.tmp" "$cache"
    touch "$cache/.complete"
fi

root=$work/run
rm -rf "$root"
cp -a "$cache" "$root"
mkdir -p "$root/root/ci"
cp "$deb" "$root/root/ci/doca-socket-relay.deb"
cp scripts/systemd-container-checks.sh "$root/root/ci/checks.sh"
cat >"$root/etc/systemd/system/dsr-ci.service" <<'EOF'
[Unit]
Description=doca-socket-relay checks under systemd
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/bash /root/ci/checks.sh
ExecStopPost=/bin/systemctl poweroff --no-block
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=300
[Install]
WantedBy=multi-user.target
EOF
ln -s /etc/systemd/system/dsr-ci.service "$root/etc/systemd/system/multi-user.target.wants/"
# Nothing in the container needs a login prompt or the apt timers.
rm -f "$root"/etc/systemd/system/getty.target.wants/* "$root"/etc/systemd/system/timers.target.wants/*

# nspawn keeps its state under /run/systemd/nspawn; where /run is not a tmpfs of its own (as in
# some sandboxes) it refuses to start without one there.
mkdir -p /run/systemd/nspawn
mountpoint -q /run/systemd/nspawn || mount -t tmpfs tmpfs /run/systemd/nspawn

start=$(date +%s)
# --register=no: no machined on the outside; --keep-unit: stay in the caller's scope.
# The container powers itself off when the checks end; timeout only catches a hang.
timeout 420 systemd-nspawn -q -b -D "$root" --register=no --keep-unit \
    >"$work/console.log" 2>&1 || echo "systemd-container-test: systemd-nspawn exited with $?"
echo "systemd-container-test: container ran for $(($(date +%s) - start)) s (console: $work/console.log)"

result=$root/root/ci/result
[[ -f $result ]] || die "the checks never finished; console tail:
$(tail -n 40 "$work/console.log")"
cat "$result"
if grep -q '^FAIL' "$result" || ! grep -q '^ALL PASSED' "$result"; then
    echo "systemd-container-test: failed; journal of the relay units:" >&2
    tail -n 150 "$root/root/ci/journal.txt" >&2 2>/dev/null || true
    exit 1
fi
