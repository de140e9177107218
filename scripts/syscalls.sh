#!/usr/bin/env bash
# Counts the system calls each relay process makes per 64-byte round trip and per MiB moved
# one way (upload, download), with `strace -c -f` attached to the running processes.
#
#   bash scripts/syscalls.sh RELAY LOADGEN [tcp|unix]
#
# Starts an echo server, a bulk server and a host/DPU relay pair in a temp dir, warms each path
# up, then attaches strace to both relays around one measured run of each kind and prints
#   rt_host: 6.0   rt_dpu: 6.0   up_host: 9.1   up_dpu: 8.7   down_host: ...   down_dpu: ...
# followed by each run's per-call breakdown on stderr. Environment: RT_COUNT [2000],
# BULK_BYTES [256M], RELAY_ARGS (more flags for both relays, e.g. --no-encrypt), KEEP_TMP=1
# keeps the logs. Needs strace.
set -euo pipefail
RELAY=$(realpath "$1")
LOADGEN=$(realpath "$2")
CHAN=${3:-tcp}
RT_COUNT=${RT_COUNT:-2000}
BULK_BYTES=${BULK_BYTES:-256M}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/dsr-syscalls.XXXXXX)
# shellcheck source=scripts/procs.sh
. "$ROOT/scripts/procs.sh"
cleanup() {
    local status=$?
    stop_all
    [[ ${KEEP_TMP:-0} == 1 || $status != 0 ]] && echo "syscalls: logs in $TMP" >&2 || rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
command -v strace >/dev/null || { echo "syscalls: strace is not installed" >&2; exit 1; }

cd "$TMP"
head -c 32 /dev/urandom >psk.key
chmod 600 psk.key
start echo "$LOADGEN" echo-server echo.sock
start bulk "$LOADGEN" bulk-server bulk.sock
for s in echo bulk; do
    if [[ $CHAN == tcp ]]; then CH=tcp:127.0.0.1:$(free_port); else CH=unix:$TMP/chan-$s.sock; fi
    # shellcheck disable=SC2086
    start "dpu-$s" "$RELAY" --role dpu --channel "$CH" -s $s.sock -n bench --psk-file psk.key ${RELAY_ARGS:-}
    # shellcheck disable=SC2086
    start "host-$s" "$RELAY" --role host --channel "$CH" -s h-$s.sock -n bench --psk-file psk.key ${RELAY_ARGS:-}
done
die() {
    echo "syscalls: $*" >&2
    exit 1
}
for _ in $(seq 100); do
    check_alive
    "$LOADGEN" latency h-echo.sock --count 1 --size 16 --timeout 5 >/dev/null 2>&1 && break
    sleep 0.1
done
"$LOADGEN" latency h-echo.sock --count 20 --timeout 30 >/dev/null
for _ in $(seq 100); do
    check_alive
    "$LOADGEN" upload h-bulk.sock --bytes 1M --timeout 5 >/dev/null 2>&1 && break
    sleep 0.1
done
"$LOADGEN" download h-bulk.sock --bytes 1M --timeout 30 >/dev/null

# traced NAME UNITS CMD...: runs CMD with strace on both relays of the path; prints the calls
# per unit of each.
traced() {
    local name=$1 units=$2 path=$3 side pid st=()
    shift 3
    for side in host dpu; do
        pid=$(pid_of "$side-$path")
        strace -c -f -p "$pid" -o "$name-$side.strace" 2>"$name-$side.attach" &
        st+=($!)
    done
    # strace says "attached" once per thread it traces.
    for _ in $(seq 100); do
        (($(cat "$name"-*.attach | grep -c attached) >= 4)) && break
        sleep 0.05
    done
    "$@" >"$name.out"
    sleep 0.2
    kill -INT "${st[@]}"
    wait "${st[@]}" 2>/dev/null || true
    for side in host dpu; do
        awk -v u="$units" -v n="${name}_$side" '$NF == "total" { printf "%s: %.1f\n", n, $(NF-2) / u }' "$name-$side.strace"
        { echo "--- $name $side"; awk 'NR > 2 && $1 !~ /^-/ { printf "  %s %s\n", $NF, ($5 ~ /^[0-9]+$/ ? $4 : $4) }' "$name-$side.strace"; } >&2
    done
}
MIB=$(awk -v b="$BULK_BYTES" 'BEGIN { m = b + 0; if (b ~ /G$/) m *= 1024; else if (b ~ /K$/) m /= 1024; else if (b !~ /M$/) m /= 1048576; print m }')
traced rt "$RT_COUNT" echo "$LOADGEN" latency h-echo.sock --count "$RT_COUNT" --size 64 --timeout 120
traced up "$MIB" bulk "$LOADGEN" upload h-bulk.sock --bytes "$BULK_BYTES" --timeout 120
traced down "$MIB" bulk "$LOADGEN" download h-bulk.sock --bytes "$BULK_BYTES" --timeout 120
