# shellcheck shell=bash
# Background-process bookkeeping shared by demo.sh, bench.sh, syscalls.sh and
# bench/encryption.sh (sourced, not run). The caller defines die(), log() and TMP (where each
# process's log goes).

PIDS=()  # long-running background processes the script started
NAMES=() # their names, for messages and logs

# start NAME CMD... : runs CMD in the background with its output in $TMP/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    NAMES+=("$name")
}

# pid_of NAME: the pid of the process started as NAME.
pid_of() {
    local i
    for i in "${!NAMES[@]}"; do
        [[ ${NAMES[$i]} == "$1" ]] && echo "${PIDS[$i]}" && return
    done
}

# children PID: a process's direct children (socat forks one per connection).
children() { pgrep -P "$1" 2>/dev/null || true; }

# check_alive: dies if a background process has exited.
check_alive() {
    local i rc
    for i in "${!PIDS[@]}"; do
        if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
            rc=0
            wait "${PIDS[$i]}" || rc=$?
            die "${NAMES[$i]} (pid ${PIDS[$i]}) exited with status $rc; see $TMP/${NAMES[$i]}.log"
        fi
    done
}

# stop_all: SIGTERM to every started process and its children, SIGKILL to what is left after 5 s.
stop_all() {
    local pid all=()
    for pid in "${PIDS[@]}"; do
        all+=("$pid")
        # shellcheck disable=SC2207
        all+=($(children "$pid"))
    done
    for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

# get KEY OUTPUT: the value of "KEY: value" in loadgen's output.
get() { awk -v k="$1:" '$1 == k { print $2; exit }' <<<"$2"; }

# stop_on_exit: at exit, stops every process started here, then removes $TMP, or keeps it (and
# says so) after a failure or with KEEP_TMP=1; INT and TERM exit with 130 and 143.
stop_on_exit() {
    trap _stop_and_clean EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

_stop_and_clean() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
    if [[ ${KEEP_TMP:-0} == 1 || $status != 0 ]]; then log "logs kept in $TMP"; else rm -rf "$TMP"; fi
    exit "$status"
}
