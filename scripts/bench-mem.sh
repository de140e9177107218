# shellcheck shell=bash
# Part of scripts/bench.sh (sourced): memory with no clients and with $CLIENTS idle clients on
# the echo chain of the relay (and of the old relay and socat, for scale). RSS counts shared
# pages once per process, which overstates socat's many forks; PSS splits them fairly.

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

# chain_pids TARGET: the echo chain's processes, with socat's per-connection children.
chain_pids() {
    local p
    for p in $(pid_of "$1-host-echo") $(pid_of "$1-dpu-echo"); do
        echo "$p"
        children "$p"
    done
}

# hold TARGET: measures TARGET's echo chain with no clients and with $CLIENTS idle ones.
declare -A MEM0 MEM1
hold() {
    local t=$1 out=$TMP/hold-$1.out lg connected
    # shellcheck disable=SC2046
    MEM0[$t]=$(mem $(chain_pids "$t"))
    "$LOADGEN" clients "${SOCK[$t.echo]}" --clients "$CLIENTS" --rounds 1 --hold 60 --timeout 120 >"$out" 2>&1 &
    lg=$!
    for _ in $(seq 300); do
        grep -q '^holding:' "$out" && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    connected=$(awk '$1 == "holding:" { print $2 }' "$out")
    if [[ ${connected:-0} != "$CLIENTS" ]]; then
        kill "$lg" 2>/dev/null || true
        cat "$out" >&2
        die "could not hold $CLIENTS idle clients on $t"
    fi
    sleep 1
    # shellcheck disable=SC2046
    MEM1[$t]=$(mem $(chain_pids "$t"))
    kill "$lg" 2>/dev/null || true
    wait "$lg" 2>/dev/null || true
    sleep 1
}

log "==> memory: no clients, then $CLIENTS idle clients"
sleep 1
for t in "${HOPS[@]}"; do [[ $t == proxyd ]] || hold "$t"; done
