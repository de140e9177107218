#!/usr/bin/env bash
# The Windows host role (x86_64-pc-windows-gnu): build, clippy, what Wine 8.0 can run, and the
# zip. Installs nothing: needs the rust target (rustup target add x86_64-pc-windows-gnu),
# mingw-w64 (gcc-mingw-w64-x86-64), wine64 and zip (.ci/run installs them).
#
# What runs under Wine (docs/WINDOWS.md): the unit tests, among them a keyed, encrypted tcp
# channel between both roles through the Windows event loop; the Windows channel code
# (examples/channel_probe) against the Linux DPU process; the .exe's flags, refusals and exit
# codes; its start under Wine's service manager. Wine has no AF_UNIX sockets, so a host
# that gets as far as binding its socket stops there, and that is checked too.
set -euo pipefail
cd "$(dirname "$0")/.."
T=x86_64-pc-windows-gnu
export WINEDEBUG=-all
if [ -z "${WINEPREFIX:-}" ]; then
    WINEPREFIX=$(mktemp -d /tmp/dsr-wine.XXXXXX)
    own_prefix=$WINEPREFIX
fi
export WINEPREFIX
fail() { echo "windows.sh: FAILED: $*" >&2; exit 1; }

start=$(date +%s)
cargo build --release --target $T
cargo clippy --target $T --all-targets -- -D warnings
# The unit tests under Wine (the runner in .cargo/config.toml sets up the prefix).
cargo test --target $T --lib

EXE=$PWD/target/$T/release/doca_socket_relay.exe
PROG=$EXE
run() { scripts/wine-run.sh "$PROG" "$@"; }
win() { echo "Z:${1//\//\\}"; }
tmp=$(mktemp -d)
cleanup() {
    rm -rf "$tmp"
    if [ -n "${own_prefix:-}" ]; then
        wineserver -k 2>/dev/null || true
        wineserver -w 2>/dev/null || true
        rm -rf "$own_prefix"
    fi
}
trap cleanup EXIT

# wine_once CMD...: runs CMD and prints its output. A program started while the previous one's
# wineserver is exiting can fail to reach it ("wine client error:0: recvmsg: Connection reset
# by peer", seen in CI, before our program ran at all): that is retried, up to 5 runs in all,
# each retry logged on stderr. Returns the last run's exit code.
wine_once() {
    local out rc try
    for try in 1 2 3 4 5; do
        rc=0
        out=$("$@" 2>&1 </dev/null) || rc=$?
        grep -qF "wine client error" <<<"$out" && [ "$try" -lt 5 ] || break
        echo "retry: Wine's server went away under: $* ($out)" >&2
        wineserver -w 2>/dev/null || true
    done
    printf '%s' "$out"
    return "$rc"
}

# expect CODE TEXT ARGS...: the exit code, and TEXT in what it printed. Wine 8.0 now and then
# loses a short-lived program's stderr (seen in about one run in five of the same command,
# with the right exit code and nothing written; CI once needed 3 runs): an empty output is
# retried, up to 5 runs in all, and each retry is logged; a wrong exit code or a wrong message
# never.
expect() {
    local code=$1 text=$2 out rc try
    shift 2
    for try in 1 2 3 4 5; do
        rc=0
        out=$(wine_once run "$@") || rc=$?
        [ "$rc" = "$code" ] || fail "$* exited $rc, not $code: $out"
        [ -n "$out" ] && break
        echo "retry: Wine lost the output of: $*"
    done
    grep -qF -- "$text" <<<"$out" || fail "$* did not say \"$text\": $out"
    echo "ok: exit $rc: $*"
}
sock=$(win "$tmp/h.sock")
base=(-s "$sock" -n svc)
expect 0 "doca_socket_relay 0.1" -v
expect 0 "Usage" -h
expect 2 "--no-auth" "${base[@]}" --channel tcp:127.0.0.1:7600
expect 2 "runs on the BlueField's Arm cores" "${base[@]}" --role dpu --channel tcp:127.0.0.1:7600 --no-auth
expect 2 "DOCA channels are not available" "${base[@]}" -p 3b:00.0
expect 2 "--socket-mode has no meaning on Windows" "${base[@]}" --channel tcp:127.0.0.1:7600 --no-auth --socket-mode 0600
expect 2 "syslog is not available" "${base[@]}" --channel tcp:127.0.0.1:7600 --no-auth --log-target syslog
expect 2 "--busy-poll is not available" "${base[@]}" --channel tcp:127.0.0.1:7600 --no-auth --busy-poll 50
expect 0 "configuration OK" --check "${base[@]}" --channel tcp:127.0.0.1:7600 --no-auth
head -c 8 /dev/urandom >"$tmp/short.key"
expect 2 "at least 32 are needed" "${base[@]}" --channel tcp:127.0.0.1:7600 --psk-file "$(win "$tmp/short.key")"
# Wine has no AF_UNIX: the host stops at its socket with a clear error, exit 1.
expect 1 "this Windows has no AF_UNIX sockets" "${base[@]}" --channel tcp:127.0.0.1:7600 --no-auth

# The Windows host's tcp channel against the Linux DPU side, process to process: Wine cannot
# start the Windows relay (no AF_UNIX), but the same channel code in examples/channel_probe
# (this platform's event loop, the keyed Noise handshake, sealed records) must get its PING
# answered by the real DPU process, and a wrong key must be refused.
cargo build --release --bin doca_socket_relay
cargo build --release --target $T --example channel_probe
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c 32 /dev/urandom >"$tmp/k.key"
head -c 32 /dev/urandom >"$tmp/other.key"
chmod 600 "$tmp/k.key" "$tmp/other.key"
target/release/doca_socket_relay --role dpu --channel "tcp:127.0.0.1:$port" -s "$tmp/srv.sock" \
    -n svc --psk-file "$tmp/k.key" 2>"$tmp/dpu.log" &
dpu=$!
for _ in $(seq 50); do grep -q "waiting for the host" "$tmp/dpu.log" && break; sleep 0.1; done
PROG=$PWD/target/$T/release/examples/channel_probe.exe
expect 0 "encrypted), PING answered" "127.0.0.1:$port" svc "$(win "$tmp/k.key")"
expect 1 "transcript or key mismatch" "127.0.0.1:$port" svc "$(win "$tmp/other.key")"
kill $dpu
wait $dpu || true
grep -q "host connected from 127.0.0.1" "$tmp/dpu.log" || fail "the Linux DPU side logged no host: $(cat "$tmp/dpu.log")"
grep -q "authentication failed" "$tmp/dpu.log" || fail "the Linux DPU side logged no refusal: $(cat "$tmp/dpu.log")"
echo "ok: Windows host channel <-> Linux DPU process: handshake, PING answered, wrong key refused"
PROG=$EXE

# Under Wine's service manager: START_PENDING, then (the socket failing as above) STOPPED
# with service-specific exit code 1, and the error in the service's log file. Wine's
# `sc query` shows its own code once the process is gone, so the calls are read from Wine's
# trace of SetServiceStatus (type 0x10: own process; state 2 then 1; 0x42a:
# ERROR_SERVICE_SPECIFIC_ERROR).
printf '{"doca_program_flags": {"socket": "%s", "cc-name": "svc", "role": "host", "channel": "tcp:127.0.0.1:7600", "no-auth": true}}\n' \
    "${sock//\\/\\\\}" >"$tmp/svc.json"
svc=dsr-ci-$$
out=$(wine_once scripts/wine-run.sh sc create "$svc" binPath= "$(win "$EXE") --json $(win "$tmp/svc.json")") ||
    fail "sc create: $out"
# Wine's service manager starts the service with its own debug settings: restart this
# prefix's Wine (ours alone) so that it traces.
wineserver -k || true
wineserver -w || true
WINEDEBUG=+service scripts/wine-run.sh sc start "$svc" >"$tmp/trace" 2>&1 || true
for _ in $(seq 50); do
    grep -qE "SetServiceStatus [0-9A-F]+ 0x10 0x1 " "$tmp/trace" && break
    sleep 0.2
done
scripts/wine-run.sh sc delete "$svc" >/dev/null || true
grep -qE "SetServiceStatus [0-9A-F]+ 0x10 0x2 0 0 0 0 0x3a98" "$tmp/trace" ||
    fail "the service did not report START_PENDING"
grep -qE "SetServiceStatus [0-9A-F]+ 0x10 0x1 0 0x42a 0x1 " "$tmp/trace" ||
    fail "the service did not report STOPPED with exit code 1"
log=$(find "$WINEPREFIX/drive_c" -path "*doca-socket-relay/$svc.log" | head -1)
grep -qF "this Windows has no AF_UNIX sockets" "$log" || fail "the service log lacks the error"
echo "ok: service: START_PENDING, STOPPED (exit 1), log file"

bash scripts/package-windows.sh
echo "windows.sh: all passed in $(($(date +%s) - start)) s"
