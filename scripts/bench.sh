#!/usr/bin/env bash
# Side-by-side benchmark: doca_socket_relay versus a two-hop socat chain (and a direct baseline),
# all in front of the same echo server (examples/loadgen.rs), on one machine.
#
#   bash scripts/bench.sh            # writes bench/RESULTS.md
#
#   direct: loadgen --> server.sock --> echo-server
#   socat:  loadgen --> socat-host.sock --> socat UNIX-LISTEN,fork --tcp 127.0.0.1-->
#                       socat TCP-LISTEN,fork --> server.sock --> echo-server
#   relay:  loadgen --> relay-host.sock --> doca_socket_relay --role host ==tcp 127.0.0.1, PSK==>
#                       doca_socket_relay --role dpu --> server.sock --> echo-server
#
# Measures single-stream throughput, 64-byte round-trip latency (p50/p99) and the round-trip
# rate of 512 concurrent clients, RUNS times each, interleaving the three paths, and reports
# medians and relay/socat ratios. It also records the relay's and socat's memory with no clients
# and with 512 idle clients connected. Needs socat; installs nothing.
#
# Environment (defaults in brackets): RUNS [5], THROUGHPUT_BYTES [256M], LATENCY_COUNT [2000],
# CLIENTS [512], CLIENT_ROUNDS [20], SOCAT_BUF [131072], OUT [bench/RESULTS.md],
# CARGO [cargo], CARGO_TARGET_DIR, KEEP_TMP=1 keeps the temp dir with all logs.
#
# Why SOCAT_BUF is 131072 and not 262144: socat is single-threaded and writes each block of up
# to -b bytes with a blocking write. With -b 262144 (more than an AF_UNIX socket buffer, 212992
# bytes by default) a full-duplex echo stream deadlocks: the server-side socat blocks writing to
# the echo server while the echo server blocks writing back to it. The throughput test then
# never finishes (checked on this machine: no progress at all with -b 262144; 65536 and 131072
# work, 131072 is the fastest). Both socat listeners get backlog=1024: socat's default of 5
# overflows the TCP accept queue when 512 clients connect at once (SYN retransmits, ~3x slower).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RELAY=$TARGET_DIR/release/doca_socket_relay
LOADGEN=$TARGET_DIR/release/examples/loadgen

RUNS=${RUNS:-5}
THROUGHPUT_BYTES=${THROUGHPUT_BYTES:-256M}
LATENCY_COUNT=${LATENCY_COUNT:-2000}
LATENCY_SIZE=64
CLIENTS=${CLIENTS:-512}
CLIENT_ROUNDS=${CLIENT_ROUNDS:-20}
SOCAT_BUF=${SOCAT_BUF:-131072}
OUT=${OUT:-$ROOT/bench/RESULTS.md}
STEP_TIMEOUT=60 # seconds; loadgen gives up (exit 3) after this
TARGETS=(direct socat relay)

log() { printf '%s\n' "$*" >&2; }
die() {
    log "bench: error: $*"
    exit 1
}

if ! command -v socat >/dev/null 2>&1; then
    log "bench: socat is not installed, and this script installs nothing."
    log "       Install it with:  apt-get install -y socat   (as root), then run again."
    exit 1
fi

log "==> building (cargo build --release --bin doca_socket_relay --example loadgen)"
"${CARGO:-cargo}" build --release --bin doca_socket_relay --example loadgen >&2
[[ -x $RELAY && -x $LOADGEN ]] || die "build did not produce $RELAY and $LOADGEN"

TMP=$(mktemp -d /tmp/doca-relay-bench.XXXXXX)
FAILURES=0
# shellcheck source=scripts/procs.sh
. "$ROOT/scripts/procs.sh"

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
    if [[ ${KEEP_TMP:-0} == 1 || $status != 0 ]]; then
        log "bench: logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_echo SOCK: waits until an echo comes back through SOCK (at most 10 s).
wait_echo() {
    for _ in $(seq 100); do
        check_alive
        if [[ -S $1 ]] && "$LOADGEN" latency "$1" --count 1 --size 16 --timeout 5 >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    die "no echo through $1 after 10 s"
}

SERVER_SOCK=$TMP/server.sock
SOCAT_SOCK=$TMP/socat-host.sock
RELAY_SOCK=$TMP/relay-host.sock
KEY=$TMP/psk.key
SOCAT_PORT=$(free_port)
RELAY_PORT=$(free_port)
while [[ $RELAY_PORT == "$SOCAT_PORT" ]]; do RELAY_PORT=$(free_port); done
head -c 32 /dev/urandom >"$KEY"
chmod 600 "$KEY"

declare -A SOCK=([direct]=$SERVER_SOCK [socat]=$SOCAT_SOCK [relay]=$RELAY_SOCK)

# The exact commands, also written to the report.
CMD_ECHO="loadgen echo-server server.sock"
CMD_SOCAT_HOST="socat -b $SOCAT_BUF UNIX-LISTEN:socat-host.sock,fork,backlog=1024 TCP:127.0.0.1:$SOCAT_PORT"
CMD_SOCAT_DPU="socat -b $SOCAT_BUF TCP-LISTEN:$SOCAT_PORT,fork,reuseaddr,bind=127.0.0.1,backlog=1024 UNIX-CONNECT:server.sock"
CMD_RELAY_DPU="doca_socket_relay --role dpu --channel tcp:127.0.0.1:$RELAY_PORT -s server.sock -n bench --psk-file psk.key"
CMD_RELAY_HOST="doca_socket_relay --role host --channel tcp:127.0.0.1:$RELAY_PORT -s relay-host.sock -n bench --psk-file psk.key"

log "==> starting the echo server, the socat chain and the relay in $TMP"
cd "$TMP"
start echo-server "$LOADGEN" echo-server server.sock
for _ in $(seq 50); do [[ -S $SERVER_SOCK ]] && break || sleep 0.1; done
wait_echo "$SERVER_SOCK"
# shellcheck disable=SC2086
start socat-dpu $CMD_SOCAT_DPU
# shellcheck disable=SC2086
start socat-host $CMD_SOCAT_HOST
# shellcheck disable=SC2086
start relay-dpu "$RELAY" ${CMD_RELAY_DPU#doca_socket_relay }
# shellcheck disable=SC2086
start relay-host "$RELAY" ${CMD_RELAY_HOST#doca_socket_relay }
cd "$ROOT"
wait_echo "$SOCAT_SOCK"
wait_echo "$RELAY_SOCK"

# ---------------------------------------------------------------------------------------------
# Memory: RSS (and PSS, which splits shared pages fairly between socat's many processes) with
# no clients, then with $CLIENTS idle clients connected (each did one round trip, so every hop
# has set its connection up).

# mem PID... : prints "RSS_KB HWM_KB PSS_KB", summed over the given processes.
mem() {
    local pid rss=0 hwm=0 pss=0 v
    for pid in "$@"; do
        v=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status" 2>/dev/null) && rss=$((rss + ${v:-0}))
        v=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status" 2>/dev/null) && hwm=$((hwm + ${v:-0}))
        v=$(awk '$1 == "Pss:" { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null) && pss=$((pss + ${v:-0}))
    done
    echo "$rss $hwm $pss"
}
relay_pids() { echo "$(pid_of relay-host) $(pid_of relay-dpu)"; }
socat_pids() {
    local p
    for p in $(pid_of socat-host) $(pid_of socat-dpu); do
        echo "$p"
        children "$p"
    done
}

# hold_clients TARGET: connects $CLIENTS clients to TARGET, leaves them idle, runs "$@"
# meanwhile, then disconnects them.
hold_clients() {
    local target=$1 out=$TMP/hold-$1.out
    shift
    "$LOADGEN" clients "${SOCK[$target]}" --clients "$CLIENTS" --rounds 1 --hold 60 \
        --timeout 120 >"$out" 2>&1 &
    local lg=$!
    for _ in $(seq 300); do
        grep -q '^holding:' "$out" && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^holding:' "$out"; then
        kill "$lg" 2>/dev/null || true
        wait "$lg" 2>/dev/null || true
        cat "$out" >&2
        die "could not hold $CLIENTS clients on $target"
    fi
    local connected
    connected=$(awk '$1 == "holding:" { print $2 }' "$out")
    ((connected == CLIENTS)) || {
        cat "$out" >&2
        die "only $connected of $CLIENTS clients connected through $target"
    }
    sleep 1
    "$@"
    kill "$lg" 2>/dev/null || true
    wait "$lg" 2>/dev/null || true
    sleep 1
}

log "==> memory: no clients, then $CLIENTS idle clients"
sleep 1
read -r R_RSS0 R_HWM0 R_PSS0 <<<"$(mem $(relay_pids))"
# shellcheck disable=SC2046
read -r S_RSS0 S_HWM0 S_PSS0 <<<"$(mem $(socat_pids))"
S_PROCS0=$(socat_pids | wc -l)
relay_mem_held() { read -r R_RSS1 R_HWM1 R_PSS1 <<<"$(mem $(relay_pids))"; }
socat_mem_held() {
    # shellcheck disable=SC2046
    read -r S_RSS1 S_HWM1 S_PSS1 <<<"$(mem $(socat_pids))"
    S_PROCS1=$(socat_pids | wc -l)
}
hold_clients relay relay_mem_held
hold_clients socat socat_mem_held
log "    relay: RSS $R_RSS0 -> $R_RSS1 kB; socat: RSS $S_RSS0 -> $S_RSS1 kB, PSS $S_PSS0 -> $S_PSS1 kB ($S_PROCS0 -> $S_PROCS1 processes)"

# ---------------------------------------------------------------------------------------------
# Performance runs, interleaved: every run measures each thing on all three paths, in an order
# that rotates from run to run.

declare -A RES # RES[kind.target] = space-separated per-run values (FAIL for a failed run)

record() { RES[$1.$2]="${RES[$1.$2]:-}${RES[$1.$2]:+ }$3"; }

# measure KIND TARGET
measure() {
    local kind=$1 target=$2 sock=${SOCK[$2]} out rc=0
    # Let the previous measurement's connections close on every hop first: the relay frees a
    # client's slot only once the close has gone through (a few ms), and 512 is its limit.
    sleep 0.2
    case $kind in
    throughput)
        out=$("$LOADGEN" throughput "$sock" --bytes "$THROUGHPUT_BYTES" --timeout "$STEP_TIMEOUT" 2>&1) || rc=$?
        ;;
    latency)
        out=$("$LOADGEN" latency "$sock" --count "$LATENCY_COUNT" --size "$LATENCY_SIZE" --timeout "$STEP_TIMEOUT" 2>&1) || rc=$?
        ;;
    clients)
        out=$("$LOADGEN" clients "$sock" --clients "$CLIENTS" --rounds "$CLIENT_ROUNDS" --size 64 --timeout "$STEP_TIMEOUT" 2>&1) || rc=$?
        ;;
    esac
    if ((rc != 0)); then
        FAILURES=$((FAILURES + 1))
        log "    $kind via $target FAILED (exit $rc):"
        sed 's/^/        /' <<<"$out" | tail -n 5 >&2
        case $kind in
        throughput) record tput "$target" FAIL ;;
        latency) record p50 "$target" FAIL && record p99 "$target" FAIL ;;
        clients) record rate "$target" FAIL ;;
        esac
        check_alive
        return
    fi
    case $kind in
    throughput)
        local v
        v=$(get throughput "$out")
        record tput "$target" "$v"
        log "    throughput via $target: $v MB/s"
        ;;
    latency)
        record p50 "$target" "$(get latency_p50 "$out")"
        record p99 "$target" "$(get latency_p99 "$out")"
        log "    latency via $target: p50 $(get latency_p50 "$out") us, p99 $(get latency_p99 "$out") us"
        ;;
    clients)
        record rate "$target" "$(get rate "$out")"
        log "    $CLIENTS clients via $target: $(get rate "$out") round trips/s"
        ;;
    esac
}

for run in $(seq "$RUNS"); do
    log "==> run $run of $RUNS"
    for kind in throughput latency clients; do
        for k in 0 1 2; do
            measure "$kind" "${TARGETS[$(((run + k) % 3))]}"
        done
    done
done

read -r R_RSS2 R_HWM2 R_PSS2 <<<"$(mem $(relay_pids))"

# ---------------------------------------------------------------------------------------------
# Report

# median VALUES...: median of the numeric values (FAIL ignored); "n/a" if there are none.
median() {
    printf '%s\n' "$@" | grep -v '^FAIL$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ratio A B: A / B to two decimals, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

declare -A MED
for key in tput p50 p99 rate; do
    for t in "${TARGETS[@]}"; do
        # shellcheck disable=SC2086
        MED[$key.$t]=$(median ${RES[$key.$t]})
    done
done

NPROC=$(nproc)
KERNEL=$(uname -r)
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
MEMTOTAL=$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
RUSTC=$(rustc --version 2>/dev/null || echo "rustc ?")
SOCATV=$(socat -V 2>/dev/null | awk '/socat version/ { print $3; exit }')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || COMMIT="$COMMIT + uncommitted changes in src/"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')

row() { # row LABEL KEY [lower]
    local r
    r=$(ratio "${MED[$2.relay]}" "${MED[$2.socat]}")
    echo "| $1 | ${MED[$2.direct]} | ${MED[$2.socat]} | ${MED[$2.relay]} | **$r** |"
}
raw() { # raw LABEL KEY
    local t
    for t in "${TARGETS[@]}"; do
        echo "| $1 | $t | ${RES[$2.$t]:-} |"
    done
}

mkdir -p "$(dirname "$OUT")"
{
    cat <<EOF
# Benchmark: doca_socket_relay vs. a socat chain

Generated by \`bash scripts/bench.sh\` (RUNS=$RUNS) on $DATE, relay commit $COMMIT.

Machine: $NPROC CPUs (\`nproc\`), ${CPU:-unknown CPU}, $MEMTOTAL RAM; kernel $KERNEL; $RUSTC; socat $SOCATV.
This is a shared, noisy VM: absolute numbers move from run to run. Compare the ratios,
which come from the same interleaved run, rather than numbers across runs.

All three paths end at the same echo server (\`loadgen echo-server\`, one thread per
connection) and are driven by the same client (\`loadgen\`, every byte verified):

- **direct**: client straight to the echo server's socket (baseline, no hop).
- **socat**: two socat processes, one per side, with a TCP hop on 127.0.0.1 between them; each
  client connection forks one socat process on each side.
- **relay**: \`doca_socket_relay\` host role and DPU role, all clients multiplexed over one TCP
  connection on 127.0.0.1 authenticated with a pre-shared key; default log level.

## Results (median of $RUNS runs)

| Measurement | direct | socat | relay | relay / socat |
|---|---:|---:|---:|---:|
$(row "Single-stream throughput, $THROUGHPUT_BYTES each way, MB/s (higher is better)" tput)
$(row "Round trip p50, $LATENCY_SIZE B, µs (lower is better)" p50)
$(row "Round trip p99, $LATENCY_SIZE B, µs (lower is better)" p99)
$(row "$CLIENTS concurrent clients, $LATENCY_SIZE B round trips/s (higher is better)" rate)

## Memory

Relay: the host and DPU processes together. socat: every socat process (the two listeners plus
the two forked per connection). RSS counts shared pages once per process, which overstates
socat's many forks; PSS splits shared pages between the processes that share them.

| | relay RSS | relay PSS | socat RSS | socat PSS |
|---|---:|---:|---:|---:|
| No clients | $R_RSS0 kB | $R_PSS0 kB | $S_RSS0 kB | $S_PSS0 kB |
| $CLIENTS idle clients connected | $R_RSS1 kB | $R_PSS1 kB | $S_RSS1 kB | $S_PSS1 kB |
| Per idle client | $(div $((R_RSS1 - R_RSS0)) "$CLIENTS") kB | $(div $((R_PSS1 - R_PSS0)) "$CLIENTS") kB | $(div $((S_RSS1 - S_RSS0)) "$CLIENTS") kB | $(div $((S_PSS1 - S_PSS0)) "$CLIENTS") kB |

socat ran $S_PROCS0 processes with no clients and $S_PROCS1 with $CLIENTS clients.
Relay peak RSS (VmHWM, host + DPU): $R_HWM0 kB at the start, $R_HWM1 kB with $CLIENTS idle
clients, $R_HWM2 kB after the whole benchmark (includes the bulk-throughput buffers).

## Per-run values

| Measurement | path | runs 1..$RUNS |
|---|---|---|
$(raw "throughput MB/s" tput)
$(raw "p50 µs" p50)
$(raw "p99 µs" p99)
$(raw "clients round trips/s" rate)

Failed measurements: $FAILURES.

## Commands

\`\`\`sh
head -c 32 /dev/urandom > psk.key && chmod 0600 psk.key
$CMD_ECHO
$CMD_SOCAT_DPU
$CMD_SOCAT_HOST
$CMD_RELAY_DPU
$CMD_RELAY_HOST

loadgen throughput SOCK --bytes $THROUGHPUT_BYTES
loadgen latency SOCK --count $LATENCY_COUNT --size $LATENCY_SIZE
loadgen clients SOCK --clients $CLIENTS --rounds $CLIENT_ROUNDS --size 64
loadgen clients SOCK --clients $CLIENTS --rounds 1 --hold 60   # memory with idle clients
\`\`\`

\`loadgen clients\` connects all clients first (16 threads), then in every round each thread
sends one message on each of its clients and then collects every echo, so all $CLIENTS
clients have a message in flight at once.

socat runs with \`-b $SOCAT_BUF\`, not \`-b 262144\`: socat writes each block with a blocking
write, and a block larger than the AF_UNIX socket buffer (212992 bytes by default) deadlocks
the full-duplex echo stream (the server-side socat blocks writing to the echo server while the
echo server blocks writing back to it); 131072 was the fastest size that does not.
Both socat listeners get \`backlog=1024\`: with socat's default listen backlog of 5, the 512
simultaneous connects overflow the TCP listener's queue and wait for SYN retransmits, which
cut socat's 512-client rate to about a third on this machine.
EOF
} >"$OUT"

log "==> wrote $OUT"
sed -n '/^## Results/,/^## Per-run/p' "$OUT" | sed '$d' >&2
if ((FAILURES > 0)); then
    log "bench: $FAILURES measurements failed (see above)"
    exit 1
fi
