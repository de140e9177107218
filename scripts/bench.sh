#!/usr/bin/env bash
# Side-by-side benchmark of doca_socket_relay against the tools it replaces, all on one machine:
#
#   direct: client --> backend socket (baseline, no hop)
#   socat:  client --> socat UNIX-LISTEN,fork --tcp 127.0.0.1--> socat TCP-LISTEN,fork --> backend
#   proxyd: client --> systemd-socket-activate + systemd-socket-proxyd --tcp--> the same --> backend
#   relay:  client --> doca_socket_relay --role host ==tcp 127.0.0.1, PSK==> --role dpu --> backend
#           ($RELAY_ARGS, default --no-encrypt: the others carry bytes in clear too; the cost of
#           encryption is bench/encryption.sh's section)
#   before: the same relay pair built from an older commit ($RELAY_BEFORE), when given
#
# Backends: loadgen's echo server, its bulk server and redis-server, each on a Unix socket.
# Every round measures everything on every path, rotating the order of the paths; the report
# gives medians and medians of per-round ratios. Also: memory with idle clients, system calls
# per round trip and per MiB (scripts/syscalls.sh, relay and before), and a chart.
#
#   bash scripts/bench.sh                                   # bench/RESULTS.md, bench/results.svg
#   RELAY_BEFORE=/path/to/old/doca_socket_relay bash scripts/bench.sh
#   SMOKE=1 bash scripts/bench.sh                           # one small round (CI), into a temp dir
#
# Environment [defaults]: RUNS [5], THROUGHPUT_BYTES [256M], LATENCY_COUNT [2000], CLIENTS [512],
# CLIENT_ROUNDS [20], REDIS_REQUESTS [200000], SOCAT_BUF [131072], OUT [bench/RESULTS.md],
# SVG [bench/results.svg], RELAY_ARGS [--no-encrypt], RELAY_BEFORE_ARGS [RELAY_ARGS; empty for a
# relay older than the encrypted channel, which has no --no-encrypt], CARGO, CARGO_TARGET_DIR,
# KEEP_TMP=1.
# Needs socat, redis-server, redis-benchmark, systemd (socket-activate, socket-proxyd), strace.
#
# socat runs with -b 131072: with a block larger than an AF_UNIX socket buffer (208 KiB) its
# blocking writes deadlock a full-duplex echo. Both socat listeners and proxyd allow 1024
# connections (their defaults, a backlog of 5 and 256 connections, fail the 512-client test).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RELAY=$TARGET_DIR/release/doca_socket_relay
LOADGEN=$TARGET_DIR/release/examples/loadgen
PROXYD=$(command -v systemd-socket-proxyd || echo /lib/systemd/systemd-socket-proxyd)

if [[ ${SMOKE:-0} == 1 ]]; then
    : "${RUNS:=1}" "${THROUGHPUT_BYTES:=16M}" "${LATENCY_COUNT:=200}" "${CLIENTS:=32}"
    : "${CLIENT_ROUNDS:=2}" "${REDIS_REQUESTS:=2000}" "${RT_COUNT:=200}" "${BULK_BYTES:=16M}"
    SMOKE_DIR=$(mktemp -d /tmp/doca-relay-smoke.XXXXXX)
    : "${OUT:=$SMOKE_DIR/RESULTS.md}" "${SVG:=$SMOKE_DIR/results.svg}"
fi
RUNS=${RUNS:-5}
THROUGHPUT_BYTES=${THROUGHPUT_BYTES:-256M}
LATENCY_COUNT=${LATENCY_COUNT:-2000}
CLIENTS=${CLIENTS:-512}
CLIENT_ROUNDS=${CLIENT_ROUNDS:-20}
REDIS_REQUESTS=${REDIS_REQUESTS:-200000}
SOCAT_BUF=${SOCAT_BUF:-131072}
OUT=${OUT:-$ROOT/bench/RESULTS.md}
SVG=${SVG:-$ROOT/bench/results.svg}
STEP_TIMEOUT=120
read -r -a RELAY_EXTRA <<<"${RELAY_ARGS---no-encrypt}"
read -r -a BEFORE_EXTRA <<<"${RELAY_BEFORE_ARGS-${RELAY_EXTRA[*]}}"

log() { printf '%s\n' "$*" >&2; }
die() {
    log "bench: error: $*"
    exit 1
}
for tool in socat redis-server redis-benchmark systemd-socket-activate strace; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install socat redis-server redis-tools systemd strace)"
done
[[ -x $PROXYD ]] || die "systemd-socket-proxyd not found"

log "==> building (cargo build --release --bin doca_socket_relay --example loadgen)"
"${CARGO:-cargo}" build --release --bin doca_socket_relay --example loadgen >&2
TARGETS=(direct socat proxyd relay)
if [[ -n ${RELAY_BEFORE:-} ]]; then
    [[ -x $RELAY_BEFORE ]] || die "RELAY_BEFORE=$RELAY_BEFORE is not an executable"
    TARGETS+=(before)
    RELAY_BEFORE_LABEL=${RELAY_BEFORE_LABEL:-$RELAY_BEFORE}
fi
HOPS=("${TARGETS[@]:1}")

TMP=$(mktemp -d /tmp/doca-relay-bench.XXXXXX)
FAILURES=0
# shellcheck source=scripts/procs.sh
. "$ROOT/scripts/procs.sh"
stop_on_exit

# ---------------------------------------------------------------------------------------------
# The backends and, for each backend, one chain of every kind.

cd "$TMP"
head -c 32 /dev/urandom >psk.key
chmod 600 psk.key
start echo-server "$LOADGEN" echo-server echo.sock
start bulk-server "$LOADGEN" bulk-server bulk.sock
start redis-server redis-server --port 0 --unixsocket "$TMP/redis.sock" --save "" --appendonly no
declare -A SOCK=([direct.echo]=$TMP/echo.sock [direct.bulk]=$TMP/bulk.sock [direct.redis]=$TMP/redis.sock)
declare -A PROCS # PROCS[target] = process names whose CPU time counts for it

# chain TARGET BACKEND: starts both hops of TARGET in front of BACKEND's socket.
chain() {
    local t=$1 b=$2 port back=$TMP/$2.sock front=$TMP/$1-$2.sock bin=$RELAY
    port=$(free_port)
    case $t in
    socat)
        start "$t-dpu-$b" socat -b "$SOCAT_BUF" "TCP-LISTEN:$port,fork,reuseaddr,bind=127.0.0.1,backlog=1024" "UNIX-CONNECT:$back"
        start "$t-host-$b" socat -b "$SOCAT_BUF" "UNIX-LISTEN:$front,fork,backlog=1024" "TCP:127.0.0.1:$port"
        ;;
    proxyd)
        start "$t-dpu-$b" systemd-socket-activate -l "127.0.0.1:$port" "$PROXYD" -c 1024 "$back"
        start "$t-host-$b" systemd-socket-activate -l "$front" "$PROXYD" -c 1024 "127.0.0.1:$port"
        ;;
    relay | before)
        local extra=("${RELAY_EXTRA[@]}")
        [[ $t == before ]] && bin=$RELAY_BEFORE && extra=("${BEFORE_EXTRA[@]}")
        start "$t-dpu-$b" "$bin" --role dpu --channel "tcp:127.0.0.1:$port" -s "$back" -n bench --psk-file psk.key "${extra[@]}"
        start "$t-host-$b" "$bin" --role host --channel "tcp:127.0.0.1:$port" -s "$front" -n bench --psk-file psk.key "${extra[@]}"
        ;;
    esac
    SOCK[$t.$b]=$front
    PROCS[$t]="${PROCS[$t]:-} $t-dpu-$b $t-host-$b"
}
for _ in $(seq 50); do [[ -S echo.sock && -S bulk.sock && -S redis.sock ]] && break || sleep 0.1; done
log "==> starting ${HOPS[*]} in front of the echo, bulk and redis servers in $TMP"
for t in "${HOPS[@]}"; do for b in echo bulk redis; do chain "$t" "$b"; done; done
cd "$ROOT"
for t in "${TARGETS[@]}"; do
    for _ in $(seq 100); do
        check_alive
        "$LOADGEN" latency "${SOCK[$t.echo]}" --count 1 --size 16 --timeout 5 >/dev/null 2>&1 &&
            redis-benchmark -s "${SOCK[$t.redis]}" -t get -n 10 -c 1 -q >/dev/null 2>&1 && continue 2
        sleep 0.1
    done
    die "no echo or redis answer through $t after 10 s"
done

# cpu TARGET: user + system seconds so far of TARGET's processes, children that exited included
# (socat forks one process per connection).
cpu() {
    local name pid tck
    tck=$(getconf CLK_TCK)
    for name in ${PROCS[$1]}; do
        pid=$(pid_of "$name")
        awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null || echo 0
    done | awk -v t="$tck" '{ s += $1 } END { printf "%.3f", s / t }'
}

# ---------------------------------------------------------------------------------------------
# Memory of the relay with idle clients (the old relay too), and of socat for scale.

# shellcheck source=scripts/bench-mem.sh
. "$ROOT/scripts/bench-mem.sh"

# ---------------------------------------------------------------------------------------------
# Interleaved rounds.

declare -A RES # RES[kind.target] = space-separated per-round values ("FAIL" for a failed one)
record() { RES[$1.$2]="${RES[$1.$2]:-}${RES[$1.$2]:+ }$3"; }
failed() {
    FAILURES=$((FAILURES + 1))
    log "    $1 via $2 FAILED:"
    sed 's/^/        /' <<<"$3" | tail -n 5 >&2
    check_alive
}

# measure KIND TARGET
measure() {
    local kind=$1 t=$2 out rc=0 c0 c1 v
    # Let the previous measurement's connections close on every hop first.
    sleep 0.2
    case $kind in
    tput)
        c0=$(cpu "$t" 2>/dev/null || echo 0)
        out=$("$LOADGEN" download "${SOCK[$t.bulk]}" --bytes "$THROUGHPUT_BYTES" --timeout "$STEP_TIMEOUT" 2>&1) || rc=$?
        sleep 0.3 # socat's per-connection processes must have exited and been reaped
        c1=$(cpu "$t" 2>/dev/null || echo 0)
        ((rc == 0)) || { failed "$kind" "$t" "$out" && record tput "$t" FAIL && record cpu "$t" FAIL && return; }
        record tput "$t" "$(get throughput "$out")"
        v=$(awk -v a="$c0" -v b="$c1" -v n="$THROUGHPUT_BYTES" 'BEGIN {
            m = n + 0; if (n ~ /G$/) m *= 1024; else if (n ~ /K$/) m /= 1024; else if (n !~ /M$/) m /= 1048576
            printf "%.3f", (b - a) / (m / 1024) }')
        [[ $t == direct ]] || record cpu "$t" "$v"
        log "    download via $t: $(get throughput "$out") MB/s, $v CPU s/GiB"
        ;;
    latency)
        out=$("$LOADGEN" latency "${SOCK[$t.echo]}" --count "$LATENCY_COUNT" --size 64 --timeout "$STEP_TIMEOUT" 2>&1) || rc=$?
        ((rc == 0)) || { failed "$kind" "$t" "$out" && record p50 "$t" FAIL && record p99 "$t" FAIL && return; }
        record p50 "$t" "$(get latency_p50 "$out")"
        record p99 "$t" "$(get latency_p99 "$out")"
        log "    latency via $t: p50 $(get latency_p50 "$out") us, p99 $(get latency_p99 "$out") us"
        ;;
    clients)
        out=$("$LOADGEN" clients "${SOCK[$t.echo]}" --clients "$CLIENTS" --rounds "$CLIENT_ROUNDS" --size 64 --timeout "$STEP_TIMEOUT" 2>&1) || rc=$?
        ((rc == 0)) || { failed "$kind" "$t" "$out" && record rate "$t" FAIL && return; }
        record rate "$t" "$(get rate "$out")"
        log "    $CLIENTS clients via $t: $(get rate "$out") round trips/s"
        ;;
    redis50 | redis512)
        local args=(-c 50)
        [[ $kind == redis512 ]] && args=(-c 512 -P 16)
        out=$(timeout "$STEP_TIMEOUT" redis-benchmark -s "${SOCK[$t.redis]}" -t get -n "$REDIS_REQUESTS" "${args[@]}" --csv 2>&1) || rc=$?
        v=$(awk -F'"' '$2 == "GET" { print $4 }' <<<"$out")
        [[ $rc == 0 && -n $v ]] || { failed "$kind" "$t" "$out" && record "$kind" "$t" FAIL && return; }
        record "$kind" "$t" "$v"
        log "    redis GET ${args[*]} via $t: $v requests/s"
        ;;
    esac
}

N=${#TARGETS[@]}
for run in $(seq "$RUNS"); do
    log "==> round $run of $RUNS"
    for kind in tput latency clients redis50 redis512; do
        for k in $(seq 0 $((N - 1))); do measure "$kind" "${TARGETS[$(((run + k) % N))]}"; done
    done
done

# ---------------------------------------------------------------------------------------------
# System calls (noise-free counts, so one measurement each).

declare -A SYS
syscalls() { # syscalls LABEL BINARY [RELAY_ARGS]
    local out
    log "==> system calls of $1 (strace -c -f)"
    out=$(RELAY_ARGS=${3:-} RT_COUNT=${RT_COUNT:-2000} BULK_BYTES=${BULK_BYTES:-256M} bash "$ROOT/scripts/syscalls.sh" "$2" "$LOADGEN" 2>/dev/null) ||
        die "scripts/syscalls.sh failed for $1"
    while read -r k v; do SYS[$1.${k%:}]=$v; done <<<"$out"
}
syscalls relay "$RELAY" "${RELAY_EXTRA[*]}"
[[ -n ${RELAY_BEFORE:-} ]] && syscalls before "$RELAY_BEFORE" "${BEFORE_EXTRA[*]}"

# shellcheck source=scripts/bench-report.sh
. "$ROOT/scripts/bench-report.sh"
