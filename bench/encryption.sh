#!/usr/bin/env bash
# Encrypted versus plain tcp channel, next to socat's plain two-hop chain, on one machine.
#
#   bash bench/encryption.sh        # prints a Markdown section for bench/RESULTS.md
#
#   socat:        loadgen --> socat UNIX-LISTEN --tcp--> socat TCP-LISTEN --> echo-server
#   plain:        loadgen --> relay host ==tcp, PSK proofs, --no-encrypt==> relay dpu --> echo-server
#   aes-gcm:      the same with --cipher aes-gcm (encrypted, the default)
#   chacha-poly:  the same with --cipher chacha-poly
#
# For each path it runs `loadgen throughput` RUNS times (interleaved, rotating the order) and
# reads the relay processes' CPU time (utime + stime from /proc/PID/stat) around each run, so it
# reports MB/s and CPU seconds per GiB relayed (both directions counted), and the ratios to
# plain and to socat as medians of the per-round ratios. It also runs
# examples/cipherbench for the Noise handshake's compute time and the raw seal/open speed.
# Needs socat; installs nothing.
#
# Environment: RUNS [5], BYTES [256M], CARGO [cargo], CARGO_TARGET_DIR, KEEP_TMP=1.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RELAY=$TARGET_DIR/release/doca_socket_relay
LOADGEN=$TARGET_DIR/release/examples/loadgen
CIPHERBENCH=$TARGET_DIR/release/examples/cipherbench
RUNS=${RUNS:-5}
BYTES=${BYTES:-256M}
PATHS=(socat plain aes-gcm chacha-poly)

log() { printf '%s\n' "$*" >&2; }
die() {
    log "encryption bench: error: $*"
    exit 1
}
command -v socat >/dev/null 2>&1 || die "socat is not installed (apt-get install -y socat)"

log "==> building"
"${CARGO:-cargo}" build --release --bin doca_socket_relay --example loadgen --example cipherbench >&2

TMP=$(mktemp -d /tmp/doca-relay-enc.XXXXXX)
# shellcheck source=scripts/procs.sh
. "$ROOT/scripts/procs.sh"
stop_on_exit

cd "$TMP"
head -c 32 /dev/urandom >psk.key
chmod 600 psk.key
start echo-server "$LOADGEN" echo-server server.sock
for _ in $(seq 50); do [[ -S server.sock ]] && break || sleep 0.1; done

port=$(free_port)
start socat-dpu socat -b 131072 "TCP-LISTEN:$port,fork,reuseaddr,bind=127.0.0.1,backlog=1024" UNIX-CONNECT:server.sock
start socat-host socat -b 131072 UNIX-LISTEN:socat.sock,fork,backlog=1024 "TCP:127.0.0.1:$port"

declare -A MODE=([plain]="--no-encrypt" [aes-gcm]="--cipher aes-gcm" [chacha-poly]="--cipher chacha-poly")
for p in plain aes-gcm chacha-poly; do
    port=$(free_port)
    common="--channel tcp:127.0.0.1:$port -n bench --psk-file psk.key ${MODE[$p]}"
    # shellcheck disable=SC2086
    start "$p-dpu" "$RELAY" --role dpu -s server.sock $common
    # shellcheck disable=SC2086
    start "$p-host" "$RELAY" --role host -s "$p.sock" $common
    sleep 0.3 # the next free_port must not pick this port again before it is bound
done

wait_echo() {
    for _ in $(seq 100); do
        check_alive
        [[ -S $1 ]] && "$LOADGEN" latency "$1" --count 1 --size 16 --timeout 5 >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "no echo through $1"
}
for p in "${PATHS[@]}"; do wait_echo "$TMP/$p.sock"; done

# cpu PIDS...: total utime + stime in clock ticks.
cpu() {
    local pid sum=0
    for pid in "$@"; do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$sum"
}
procs_of() {
    if [[ $1 == socat ]]; then
        local p
        for p in $(pid_of socat-host) $(pid_of socat-dpu); do
            echo "$p"
            children "$p"
        done
    else
        echo "$(pid_of "$1-host") $(pid_of "$1-dpu")"
    fi
}
TICK=$(getconf CLK_TCK)
BYTES_EACH=$(numfmt --from=iec "$BYTES")

declare -A TPUT CPUG RATIO_PLAIN RATIO_SOCAT LAST
for run in $(seq "$RUNS"); do
    order=("${PATHS[@]:run%4}" "${PATHS[@]:0:run%4}")
    for p in "${order[@]}"; do
        sleep 0.2
        # socat forks its per-connection processes only when the client connects; those are
        # children at the end of the run, so its CPU is read from the listeners' cumulative
        # children times instead (cutime + cstime once the forks have exited).
        if [[ $p == socat ]]; then
            before=$(awk '{ s += $14 + $15 + $16 + $17 } END { print s }' /proc/"$(pid_of socat-host)"/stat /proc/"$(pid_of socat-dpu)"/stat)
        else
            # shellcheck disable=SC2046
            before=$(cpu $(procs_of "$p"))
        fi
        out=$("$LOADGEN" throughput "$TMP/$p.sock" --bytes "$BYTES" --timeout 120 2>&1) || die "throughput via $p failed: $out"
        if [[ $p == socat ]]; then
            sleep 0.3 # let the forks exit and be reaped, so that their time is counted
            after=$(awk '{ s += $14 + $15 + $16 + $17 } END { print s }' /proc/"$(pid_of socat-host)"/stat /proc/"$(pid_of socat-dpu)"/stat)
        else
            # shellcheck disable=SC2046
            after=$(cpu $(procs_of "$p"))
        fi
        mbs=$(sed -n 's/^throughput: \([0-9.]*\) MB\/s.*/\1/p' <<<"$out")
        # CPU seconds (both processes of the path) per GiB relayed, both directions counted.
        cpug=$(awk -v t=$((after - before)) -v k="$TICK" -v b="$BYTES_EACH" 'BEGIN { printf "%.2f", t / k / (2 * b / 1073741824) }')
        TPUT[$p]="${TPUT[$p]:-} $mbs"
        CPUG[$p]="${CPUG[$p]:-} $cpug"
        LAST[$p]=$mbs
        log "    run $run $p: $mbs MB/s, $cpug CPU s/GiB"
    done
    # Ratios within the round: the machine's speed changes between rounds more than between
    # the paths of one round.
    for p in "${PATHS[@]}"; do
        RATIO_PLAIN[$p]="${RATIO_PLAIN[$p]:-} $(awk -v a="${LAST[$p]}" -v b="${LAST[plain]}" 'BEGIN { print a / b }')"
        RATIO_SOCAT[$p]="${RATIO_SOCAT[$p]:-} $(awk -v a="${LAST[$p]}" -v b="${LAST[socat]}" 'BEGIN { print a / b }')"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cd "$ROOT"
CB=$("$CIPHERBENCH" 256)
printf '## Encryption (bench/encryption.sh)\n\n'
printf 'Generated on %s, commit %s, RUNS=%s, %s each way per run. Machine: %s CPUs, %s.\n\n' \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD)" "$RUNS" "$BYTES" "$(nproc)" \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
printf 'Throughput vs plain and vs socat: medians of the per-round ratios.\n\n'
printf '| path | MB/s (median) | CPU s per GiB relayed (median) | vs plain | vs socat |\n|---|---:|---:|---:|---:|\n'
for p in "${PATHS[@]}"; do
    printf '| %s | %s | %s | %.2f | %.2f |\n' "$p" "$(median <<<"${TPUT[$p]}")" "$(median <<<"${CPUG[$p]}")" \
        "$(median <<<"${RATIO_PLAIN[$p]}")" "$(median <<<"${RATIO_SOCAT[$p]}")"
done
printf '\nPer run (MB/s):\n\n'
for p in "${PATHS[@]}"; do printf -- '- %s:%s\n' "$p" "${TPUT[$p]}"; done
printf '\nPer run, aes-gcm / socat:%s\n' "$(for r in ${RATIO_SOCAT[aes-gcm]}; do printf ' %.2f' "$r"; done)"
printf '\nIn-process cipher speed and Noise handshake compute time (examples/cipherbench, full\n1 MiB records):\n\n```\n%s\n```\n' "$CB"
