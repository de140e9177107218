#!/bin/bash
# The checks scripts/systemd-container-test.sh runs inside the container, under systemd as PID 1
# (not meant to be run on a real machine: it installs and removes the package). Writes one
# PASS/FAIL line per check to /root/ci/result, then "ALL PASSED" if none failed.
set -uo pipefail

CI=/root/ci
RESULT=$CI/result
PKG=doca-socket-relay
ETC=/etc/$PKG
HOST_SOCK=/run/$PKG/host/host.sock
ACT_SOCK=/run/$PKG/act.sock
: >"$RESULT"
failed=0

pass() { echo "PASS $1" | tee -a "$RESULT"; }
fail() { echo "FAIL $1: $2" | tee -a "$RESULT"; failed=1; }
# check NAME CMD...: PASS if CMD succeeds, else FAIL with its output.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(echo "$out" | tail -n 5 | tr '\n' ' ')"; fi
}
prop() { systemctl show -P "$2" "$1"; }
# Polls CMD every 0.2 s for up to $1 seconds.
wait_for() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    "$@"
}
# Sends 256 KiB of random bytes through the host socket $1 to the echo app and compares.
relay_bytes() {
    head -c 262144 /dev/urandom >"$CI/in"
    timeout 20 socat -t 10 - "UNIX-CONNECT:$1" <"$CI/in" >"$CI/out" && cmp "$CI/in" "$CI/out"
}
active() { [[ $(prop "$1" ActiveState) == active ]]; }
inactive() { [[ $(prop "$1" ActiveState) != active && $(prop "$1" ActiveState) != activating ]]; }
pid_changed() { local p; p=$(prop "$1" MainPID); [[ $p != 0 && $p != "$2" ]] && active "$1"; }
status_has() { systemctl status --no-pager "$1" | grep -q "Status: \"$2"; }

# --- install ---
check install dpkg -i "$CI/$PKG.deb"
check "system user created" getent passwd "$PKG"
check "target enabled on first install" systemctl is-enabled "$PKG.target"

# An echo server application on the "DPU", and one key for both sides (packaged layout).
mkdir -p /run/echoapp
systemd-run -q --unit=echoapp socat UNIX-LISTEN:/run/echoapp/srv.sock,fork,mode=0666 EXEC:cat
head -c 32 /dev/urandom >"$ETC/k.key"
chown "root:$PKG" "$ETC/k.key"
chmod 0640 "$ETC/k.key"
flags() { # NAME ROLE SOCKET PORT
    cat >"$ETC/$1.json" <<EOF
// written by the container checks
{ "doca_general_flags": { "log-level": 50 },
  "doca_program_flags": { "socket": "$3", "cc-name": "ci", "role": "$2",
    "channel": "tcp:127.0.0.1:$4", "psk-file": "$ETC/k.key", "socket-mode": "0666" } }
EOF
}
# One host per DPU instance (a second host's session replaces the first): the socket-activated
# host instance gets a DPU instance of its own.
flags dpu dpu /run/echoapp/srv.sock 7600
flags host host "$HOST_SOCK" 7600
flags actdpu dpu /run/echoapp/srv.sock 7601
flags act host "$ACT_SOCK" 7601
printf '{ "doca_program_flags": { "socket": "/run/x.sock", "cc-name": "ci", "max-clients": 0 } }\n' >"$ETC/bad.json"
# Start failures: a socket directory nobody creates (only the operator can fix it: exit 2) and
# a DPU port another instance holds (it may be freed: exit 1, restarted).
flags nodir host /run/no-such-dir/h.sock 7602
flags busy dpu /run/echoapp/srv.sock 7600

# --- --check before the start: root (not in the group the key is shared with) and the
# service's user both accept the packaged layout; a live instance would be a problem ---
check "root's --check accepts the packaged key layout" doca_socket_relay --check --json "$ETC/dpu.json"
check "the service user's --check passes too" runuser -u "$PKG" -- doca_socket_relay --check --json "$ETC/dpu.json"

# --- two instances over tcp: Type=notify start returns once READY=1 was sent ---
check "dpu and host instances start (READY)" systemctl start "$PKG@dpu" "$PKG@host"
check "bytes relayed host -> dpu -> app and back" wait_for 10 relay_bytes "$HOST_SOCK"
check "STATUS shows the channel up" wait_for 5 status_has "$PKG@host" "channel up"
# The status loop sends changed figures once a second: the 256 KiB just relayed shows up.
check "STATUS is live (byte counts)" wait_for 5 status_has "$PKG@host" "channel up; 0 clients; 262144 bytes sent, 262144 bytes received"

# --- reload: the log level and the client limit change while a client streams ---
(for i in $(seq 1 100); do echo "line $i"; sleep 0.05; done) |
    socat -t 5 - "UNIX-CONNECT:$HOST_SOCK" >/tmp/stream.out &
streamer=$!
sleep 0.5
cp "$ETC/host.json" /tmp/host.json.good
sed -i 's/"log-level": 50/"log-level": 60/; s/"socket-mode": "0666"/"socket-mode": "0666", "max-clients": 1/' "$ETC/host.json"
check "systemctl reload" systemctl reload "$PKG@host"
check "reload applied (journal)" wait_for 5 journalctl -u "$PKG@host" -q --grep "changed: log-level 50 -> 60, max-clients 512 -> 1"
check "a second client is refused at the reloaded limit" bash -c "! printf x | socat -t 2 - UNIX-CONNECT:$HOST_SOCK | grep -q x"
printf '{ broken\n' >"$ETC/host.json"
check "systemctl reload with a broken file" systemctl reload "$PKG@host"
check "the broken file is reported and the relay keeps running" wait_for 5 bash -c "journalctl -u $PKG@host -q --grep 'reload failed, the running configuration stays' && systemctl is-active -q $PKG@host"
wait "$streamer"
check "the stream was not dropped by the reloads" test "$(grep -c '^line ' /tmp/stream.out)" = 100
cp /tmp/host.json.good "$ETC/host.json"
check "reload back to the shipped settings" systemctl reload "$PKG@host"
check "relay works after the reloads" wait_for 10 relay_bytes "$HOST_SOCK"

# --- socket activation: systemd owns the socket, the first client starts the service ---
check "socket unit starts" systemctl start "$PKG@actdpu" "$PKG@act.socket"
check "service not started before a client" inactive "$PKG@act.service"
check "first client is relayed through the activated service" relay_bytes "$ACT_SOCK"
check "service was activated" active "$PKG@act.service"

# --- a configuration error exits 2 and is not restarted; a busy port exits 1 and is ---
systemctl start "$PKG@bad" "$PKG@nodir" "$PKG@busy" >/dev/null 2>&1
status_is() { test "$(prop "$1" ExecMainStatus)" = "$2"; }
check "bad config exits 2" wait_for 5 status_is "$PKG@bad" 2
check "missing socket directory exits 2" wait_for 5 status_is "$PKG@nodir" 2
check "port in use exits 1" wait_for 5 status_is "$PKG@busy" 1
sleep 7 # longer than RestartSec=5s
check "bad config not restarted" test "$(prop "$PKG@bad" NRestarts)/$(prop "$PKG@bad" ActiveState)" = 0/failed
check "missing socket directory not restarted" test "$(prop "$PKG@nodir" NRestarts)/$(prop "$PKG@nodir" ActiveState)" = 0/failed
check "missing socket directory named in the journal" journalctl -u "$PKG@nodir" --grep "no-such-dir is missing" -q
check "port in use restarted" test "$(prop "$PKG@busy" NRestarts)" -ge 1
systemctl stop "$PKG@busy"

# --- a wedged relay is killed by the watchdog and restarted ---
# The shipped WatchdogSec=20s and RestartSec=5s, shortened in a drop-in to keep the run short;
# the mechanism (pings from the relay's event loop) is the same.
mkdir -p "/run/systemd/system/$PKG@host.service.d"
printf '[Service]\nWatchdogSec=3s\nRestartSec=1s\n' >"/run/systemd/system/$PKG@host.service.d/ci.conf"
systemctl daemon-reload
systemctl restart "$PKG@host"
old=$(prop "$PKG@host" MainPID)
kill -STOP "$old"
check "SIGSTOPped relay restarted by the watchdog" wait_for 20 pid_changed "$PKG@host" "$old"
check "watchdog named in the journal" journalctl -u "$PKG@host" --grep "Watchdog timeout" -q
check "relay works after the watchdog restart" wait_for 10 relay_bytes "$HOST_SOCK"

# --- the target restarts every instance ---
dpu_pid=$(prop "$PKG@dpu" MainPID)
host_pid=$(prop "$PKG@host" MainPID)
check "target restart" systemctl restart "$PKG.target"
check "dpu instance restarted by the target" wait_for 10 pid_changed "$PKG@dpu" "$dpu_pid"
check "host instance restarted by the target" wait_for 10 pid_changed "$PKG@host" "$host_pid"
check "relay works after the target restart" wait_for 10 relay_bytes "$HOST_SOCK"

# --- reinstall keeps the instances running ---
check reinstall dpkg -i "$CI/$PKG.deb"
check "dpu instance running after reinstall" wait_for 10 active "$PKG@dpu"
check "host instance running after reinstall" wait_for 10 active "$PKG@host"
check "relay works after reinstall" wait_for 10 relay_bytes "$HOST_SOCK"

# --- removal stops every instance and keeps the configs ---
check remove dpkg -r "$PKG"
for unit in "$PKG@dpu.service" "$PKG@host.service" "$PKG@actdpu.service" "$PKG@act.service" "$PKG@act.socket"; do
    check "$unit stopped on removal" inactive "$unit"
done
check "no relay process left" bash -c '! pidof doca_socket_relay'
check "configs and key kept" test -f "$ETC/dpu.json" -a -f "$ETC/host.json" -a -f "$ETC/k.key"

journalctl --no-pager -u "$PKG@*" >"$CI/journal.txt" 2>&1
[[ $failed == 0 ]] && echo "ALL PASSED" | tee -a "$RESULT"
exit 0
