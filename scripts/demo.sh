#!/usr/bin/env bash
# End-to-end demo of doca_socket_relay on one machine, no DPU needed.
#
#   bash scripts/demo.sh
#
# Builds the relay and the load generator (examples/loadgen.rs), then runs
#
#   loadgen client --> host.sock --> [relay, host role] ==tcp 127.0.0.1, PSK==>
#                      [relay, DPU role] --> server.sock --> loadgen echo-server
#
# and pushes a bulk stream, a latency test and 512 concurrent clients through it, verifying
# every byte that comes back. Everything lives in a temporary directory under /tmp and is
# stopped and removed on exit. Exits non-zero if any step fails. Takes well under a minute
# after the build.
#
# Environment: CARGO (default cargo), CARGO_TARGET_DIR (as cargo), KEEP_TMP=1 keeps the temp dir.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RELAY=$TARGET_DIR/release/doca_socket_relay
LOADGEN=$TARGET_DIR/release/examples/loadgen

THROUGHPUT_BYTES=256M
LATENCY_COUNT=2000
LATENCY_SIZE=64
CLIENTS=512
CLIENT_ROUNDS=20
STEP_TIMEOUT=60 # seconds; loadgen gives up (exit 3) after this

if [[ -t 1 ]]; then
    BOLD=$'\033[1m' RED=$'\033[31m' GREEN=$'\033[32m' PLAIN=$'\033[0m'
else
    BOLD='' RED='' GREEN='' PLAIN=''
fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$PLAIN"; }
die() {
    printf '\n%sdemo FAILED: %s%s\n' "$RED" "$*" "$PLAIN" >&2
    exit 1
}

say "Building (cargo build --release --bin doca_socket_relay --example loadgen)"
"${CARGO:-cargo}" build --release --bin doca_socket_relay --example loadgen
[[ -x $RELAY && -x $LOADGEN ]] || die "build did not produce $RELAY and $LOADGEN"

TMP=$(mktemp -d /tmp/doca-relay-demo.XXXXXX)
# shellcheck source=scripts/procs.sh
. "$ROOT/scripts/procs.sh"

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
    if ((status != 0)); then
        for f in "$TMP"/*.log; do
            [[ -s $f ]] || continue
            echo "--- last lines of $(basename "$f") ---" >&2
            tail -n 15 "$f" >&2
        done
    fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "temp dir kept: $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_step TITLE CMD... : runs a loadgen step, shows its output indented, keeps it for the summary.
run_step() {
    local title=$1
    shift
    say "$title"
    echo "    \$ ${*/#$ROOT\//}"
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    sed 's/^/    /' <<<"$out"
    if ((rc != 0)); then
        local i dead=""
        for i in "${!PIDS[@]}"; do
            kill -0 "${PIDS[$i]}" 2>/dev/null || dead+=" ${NAMES[$i]}"
        done
        die "$title: loadgen exited with status $rc${dead:+ (no longer running:$dead)}"
    fi
    check_alive
    STEP_OUT=$out
}

SERVER_SOCK=$TMP/server.sock
HOST_SOCK=$TMP/host.sock
KEY=$TMP/psk.key
PORT=$(free_port)
CHANNEL=tcp:127.0.0.1:$PORT
NAME=demo

say "Setting up in $TMP"
head -c 32 /dev/urandom >"$KEY"
chmod 600 "$KEY"
echo "    pre-shared key: $KEY (32 random bytes)"
echo "    channel:        $CHANNEL"

start echo-server "$LOADGEN" echo-server "$SERVER_SOCK"
for _ in $(seq 50); do
    [[ -S $SERVER_SOCK ]] && break
    sleep 0.1
done
[[ -S $SERVER_SOCK ]] || die "echo server did not create $SERVER_SOCK"
check_alive
echo "    echo app:  loadgen echo-server $SERVER_SOCK (pid ${PIDS[-1]})"

start relay-dpu "$RELAY" --role dpu --channel "$CHANNEL" -s "$SERVER_SOCK" -n "$NAME" --psk-file "$KEY"
echo "    DPU role:  doca_socket_relay --role dpu --channel $CHANNEL -s $SERVER_SOCK -n $NAME --psk-file $KEY (pid ${PIDS[-1]})"
start relay-host "$RELAY" --role host --channel "$CHANNEL" -s "$HOST_SOCK" -n "$NAME" --psk-file "$KEY"
echo "    host role: doca_socket_relay --role host --channel $CHANNEL -s $HOST_SOCK -n $NAME --psk-file $KEY (pid ${PIDS[-1]})"

say "Waiting for $HOST_SOCK to answer through the relay"
ready=0
for _ in $(seq 100); do
    check_alive
    if [[ -S $HOST_SOCK ]] &&
        "$LOADGEN" latency "$HOST_SOCK" --count 1 --size 16 --timeout 5 >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
((ready)) || die "no echo through $HOST_SOCK after 10 s"
echo "    ready: a 16-byte message went client -> host role -> tcp -> DPU role -> echo app and back"

run_step "1/3 Bulk stream: $THROUGHPUT_BYTES each way on one client connection" \
    "$LOADGEN" throughput "$HOST_SOCK" --bytes "$THROUGHPUT_BYTES" --timeout "$STEP_TIMEOUT"
THROUGHPUT=$(awk '$1 == "throughput:" { print $2, $3; exit }' <<<"$STEP_OUT")

run_step "2/3 Latency: $LATENCY_COUNT sequential round trips of $LATENCY_SIZE bytes" \
    "$LOADGEN" latency "$HOST_SOCK" --count "$LATENCY_COUNT" --size "$LATENCY_SIZE" --timeout "$STEP_TIMEOUT"
P50=$(get latency_p50 "$STEP_OUT")
P99=$(get latency_p99 "$STEP_OUT")

# The relay frees a client's slot only once the close has gone through both hops (a few ms);
# give the connections of the steps above that time, since 512 is exactly --max-clients.
sleep 0.2
run_step "3/3 Concurrency: $CLIENTS clients connected at once, $CLIENT_ROUNDS round trips each" \
    "$LOADGEN" clients "$HOST_SOCK" --clients "$CLIENTS" --rounds "$CLIENT_ROUNDS" --size 64 --timeout "$STEP_TIMEOUT"
RATE=$(get rate "$STEP_OUT")
CONNECT_FAILED=$(get connect_failed "$STEP_OUT")

say "Stopping the relay with SIGTERM"
for i in "${!PIDS[@]}"; do
    [[ ${NAMES[$i]} == relay-* ]] || continue
    kill -TERM "${PIDS[$i]}"
done
for i in "${!PIDS[@]}"; do
    [[ ${NAMES[$i]} == relay-* ]] || continue
    pid=${PIDS[$i]}
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && die "${NAMES[$i]} still running 5 s after SIGTERM"
    rc=0
    wait "$pid" || rc=$?
    ((rc == 0)) || die "${NAMES[$i]} exited with status $rc after SIGTERM"
    echo "    ${NAMES[$i]} exited cleanly"
done
[[ -e $HOST_SOCK ]] && echo "    note: host role left $HOST_SOCK behind"

say "Summary"
cat <<EOF
    Two relay processes ran on this machine. The host role bound host.sock for clients;
    the DPU role connected each relayed client to the echo app at server.sock; the two
    roles carried all clients over one TCP connection on 127.0.0.1:$PORT, authenticated
    with a pre-shared key and encrypted; no DOCA library was used. On a BlueField the same
    two roles run on the host and on the DPU, over a DOCA channel (--channel doca) or this
    TCP channel on the tmfifo_net0 link. Every echoed byte was checked.

    bulk stream throughput:     $THROUGHPUT ($THROUGHPUT_BYTES each way, verified)
    round-trip latency:         p50 $P50 us, p99 $P99 us ($LATENCY_SIZE-byte messages)
    $CLIENTS concurrent clients:     $RATE round trips/s, $CONNECT_FAILED failed connects

    For a comparison with a socat chain, run: bash scripts/bench.sh
EOF
printf '\n%sdemo OK%s\n' "$GREEN" "$PLAIN"
