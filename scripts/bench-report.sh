# shellcheck shell=bash
# Part of scripts/bench.sh (sourced): turns RES, SYS, MEM0/MEM1 into $OUT (markdown) and $SVG.

# median VALUES...: median of the numeric values (FAIL ignored); "n/a" if there are none.
median() {
    printf '%s\n' "$@" | grep -v '^FAIL$' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ratio KEY A B: median over rounds of A's value / B's value, two decimals, or n/a.
ratio() {
    paste -d' ' <(tr ' ' '\n' <<<"${RES[$1.$2]:-}") <(tr ' ' '\n' <<<"${RES[$1.$3]:-}") |
        awk '$1 + 0 > 0 && $2 + 0 > 0 { print $1 / $2 }' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fmt() { awk -v v="$1" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else if (v >= 100) printf "%.0f", v; else if (v >= 10) printf "%.1f", v; else printf "%.3g", v }'; }

# KEYS: kind, label, whether lower is better.
KINDS=(tput p50 p99 rate redis50 redis512 cpu)
declare -A LABEL=(
    [tput]="Single-stream download, $THROUGHPUT_BYTES, MB/s"
    [p50]="Round trip p50, 64 B, µs"
    [p99]="Round trip p99, 64 B, µs"
    [rate]="$CLIENTS clients, 64 B round trips/s"
    [redis50]="Redis GET, 50 clients, requests/s"
    [redis512]="Redis GET, 512 clients, -P 16, requests/s"
    [cpu]="CPU seconds per GiB downloaded (both hops)"
)
declare -A LOWER=([p50]=1 [p99]=1 [cpu]=1)
# What issue 9 asks of the relay, as "KEY:TARGET:OP:VALUE".
GOALS=(tput:socat:ge:1.25 tput:direct:ge:0.45 p50:socat:le:0.8 p99:socat:le:0.8 cpu:socat:le:0.7
    redis50:direct:ge:0.7 redis512:direct:ge:0.65 redis50:socat:ge:4 redis512:socat:ge:4)

results_table() {
    local k t
    printf '| Measurement |'
    for t in "${TARGETS[@]}"; do printf ' %s |' "$t"; done
    printf '\n|---|'
    for t in "${TARGETS[@]}"; do printf -- '---:|'; done
    printf '\n'
    for k in "${KINDS[@]}"; do
        printf '| %s (%s is better) |' "${LABEL[$k]}" "$([[ -n ${LOWER[$k]:-} ]] && echo lower || echo higher)"
        # shellcheck disable=SC2086
        for t in "${TARGETS[@]}"; do printf ' %s |' "$(fmt "$(median ${RES[$k.$t]:-})")"; done
        printf '\n'
    done
}

ratio_table() {
    local k t others=(socat proxyd direct)
    [[ -n ${RELAY_BEFORE:-} ]] && others+=(before)
    printf '| Measurement |'
    for t in "${others[@]}"; do printf ' relay / %s |' "$t"; done
    printf '\n|---|'
    for t in "${others[@]}"; do printf -- '---:|'; done
    printf '\n'
    for k in "${KINDS[@]}"; do
        printf '| %s |' "${LABEL[$k]}"
        for t in "${others[@]}"; do printf ' %s |' "$(ratio "$k" relay "$t")"; done
        printf '\n'
    done
}

goal_table() {
    local g k t op want got ok
    printf '| Goal (issue 9) | measured | met |\n|---|---:|---|\n'
    for g in "${GOALS[@]}"; do
        IFS=: read -r k t op want <<<"$g"
        got=$(ratio "$k" relay "$t")
        ok=$(awk -v g="$got" -v w="$want" -v o="$op" 'BEGIN { if (g == "n/a") print "n/a"; else if ((o == "ge" && g >= w) || (o == "le" && g <= w)) print "yes"; else print "**no**" }')
        printf '| %s: relay / %s %s %s | %s | %s |\n' "${LABEL[$k]}" "$t" "$([[ $op == ge ]] && echo '>=' || echo '<=')" "$want" "$got" "$ok"
    done
}

syscall_table() {
    local w side
    printf '| per relay process | host | DPU |'
    [[ -n ${RELAY_BEFORE:-} ]] && printf ' host before | DPU before |'
    printf '\n|---|---:|---:|'
    [[ -n ${RELAY_BEFORE:-} ]] && printf -- '---:|---:|'
    printf '\n'
    for w in rt:"system calls per 64-byte round trip" up:"system calls per MiB uploaded" down:"system calls per MiB downloaded"; do
        printf '| %s |' "${w#*:}"
        for side in host dpu; do printf ' %s |' "${SYS[relay.${w%%:*}_$side]:-n/a}"; done
        if [[ -n ${RELAY_BEFORE:-} ]]; then
            for side in host dpu; do printf ' %s |' "${SYS[before.${w%%:*}_$side]:-n/a}"; done
        fi
        printf '\n'
    done
}

mem_table() {
    local t a b
    printf '| echo chain | no clients: RSS / PSS kB | %s idle clients: RSS / PSS kB | per idle client, PSS kB |\n|---|---:|---:|---:|\n' "$CLIENTS"
    for t in "${HOPS[@]}"; do
        [[ -n ${MEM0[$t]:-} ]] || continue
        read -r a _ c <<<"${MEM0[$t]}"
        read -r b _ d <<<"${MEM1[$t]}"
        printf '| %s | %s / %s | %s / %s | %s |\n' "$t" "$a" "$c" "$b" "$d" "$(awk -v x="$c" -v y="$d" -v n="$CLIENTS" 'BEGIN { printf "%.1f", (y - x) / n }')"
    done
}

raw_table() {
    local k t
    printf '| Measurement | path | rounds 1..%s |\n|---|---|---|\n' "$RUNS"
    for k in "${KINDS[@]}"; do
        for t in "${TARGETS[@]}"; do
            [[ -n ${RES[$k.$t]:-} ]] && printf '| %s | %s | %s |\n' "$k" "$t" "${RES[$k.$t]}"
        done
    done
}

# The chart: each hop's median per-round ratio to socat, turned so that longer is better
# (direct, 3-7x socat, is in the tables: on the same scale it would flatten the rest).
chart() {
    local k t r
    for k in "${KINDS[@]}"; do
        for t in "${HOPS[@]}"; do
            [[ $t == socat ]] && continue
            r=$(ratio "$k" "$t" socat)
            [[ $r == n/a ]] && continue
            [[ -n ${LOWER[$k]:-} ]] && r=$(awk -v r="$r" 'BEGIN { printf "%.2f", 1 / r }')
            printf '%s\t%s\t%s\n' "${LABEL[$k]}" "$t" "$r"
        done
    done | awk -F'\t' -v title="Each path against socat (1.0 = socat; longer is better; median of $RUNS rounds)" -f "$ROOT/scripts/bench-chart.awk"
}

NPROC=$(nproc)
KERNEL=$(uname -r)
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || COMMIT="$COMMIT + uncommitted changes in src/"
SOCATV=$(socat -V 2>/dev/null | awk '/socat version/ { print $3; exit }')
REDISV=$(redis-server --version | awk '{ print $3 }')
SYSTEMDV=$(systemd-socket-activate --version 2>/dev/null | awk 'NR == 1 { print $2 }')

mkdir -p "$(dirname "$OUT")" "$(dirname "$SVG")"
chart >"$SVG"
# bench/encryption.sh's section is pasted in by hand: keep it.
KEPT=$(sed -n '/^## Encryption/,$p' "$OUT" 2>/dev/null || true)
{
    cat <<EOF
# Benchmark: doca_socket_relay against socat, systemd-socket-proxyd and a direct connection

Generated by \`bash scripts/bench.sh\` (RUNS=$RUNS) on $(date -u '+%Y-%m-%d %H:%M UTC'), relay commit $COMMIT${RELAY_BEFORE:+; "before" is \`$RELAY_BEFORE_LABEL\`}.
Machine: $NPROC CPUs, ${CPU:-unknown CPU}; kernel $KERNEL; socat $SOCATV, redis $REDISV, systemd $SYSTEMDV.
A shared, noisy VM: compare the ratios, which come from the same interleaved rounds, rather
than absolute numbers across runs. The chart shows each path against socat:

![results]($(basename "$SVG"))

## Paths

- **direct**: the client straight on the backend's socket (no hop).
- **socat**: two socat processes, one per side, TCP on 127.0.0.1 between them; each client
  connection forks one process on each side (\`-b $SOCAT_BUF\`).
- **proxyd**: \`systemd-socket-activate\` + \`systemd-socket-proxyd\` on each side, TCP between.
- **relay**: \`doca_socket_relay\` host and DPU roles, all clients multiplexed over one TCP
  connection on 127.0.0.1 authenticated with a pre-shared key, run with \`${RELAY_EXTRA[*]}\`.$([[ -n ${RELAY_BEFORE:-} ]] && printf '\n- **before**: the relay built from %s, run with `%s`.' "$RELAY_BEFORE_LABEL" "${BEFORE_EXTRA[*]}")

Backends: \`loadgen echo-server\` (round trips, clients), \`loadgen bulk-server\` (download),
\`redis-server\` (\`redis-benchmark -t get -n $REDIS_REQUESTS\`), each on a Unix socket.

## Results (median of $RUNS rounds)

$(results_table)

## Ratios (median of the per-round ratios)

$(ratio_table)

$(goal_table)

## System calls (\`strace -c -f\` on each relay process, scripts/syscalls.sh)

$(syscall_table)

## Memory

$(mem_table)

## Per-round values

$(raw_table)

Failed measurements: $FAILURES.
EOF
    if [[ -n $KEPT ]]; then printf '\n%s\n' "$KEPT"; fi
} >"$OUT"
log "==> wrote $OUT and $SVG"
sed -n '/^## Results/,/^## Memory/p' "$OUT" >&2
if ((FAILURES > 0)); then
    log "bench: $FAILURES measurements failed (see above)"
    exit 1
fi
