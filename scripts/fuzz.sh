#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time (FUZZ_SECONDS each, default 50): the frame
# decoder as a byte stream and as DOCA-sized messages, the encrypted channel's reader, the
# handshake on both roles, the JSON flag file and the command line. Each run starts from the committed seeds in fuzz/seeds/TARGET
# plus what earlier runs found (kept in target/fuzz-corpus/, never in the repository).
#
#   bash scripts/fuzz.sh                 # all targets, 50 s each (~6 min with the build)
#   bash scripts/fuzz.sh handshake 600   # one target, longer
#
# Needs cargo-fuzz (cargo install --locked cargo-fuzz@0.13.1) and a C++ compiler (libFuzzer is
# built from source by libfuzzer-sys). cargo-fuzz passes -Zsanitizer=address, a nightly flag:
# on a stable toolchain RUSTC_BOOTSTRAP=1 lets rustc accept it, so no nightly is needed.
# Without cargo-fuzz the script says so and exits 0: the fuzzing is skipped, not failed, and
# every crash found so far stays covered by the regression tests in the ordinary `cargo test`.
# A crash or timeout fails the script; the input is left in fuzz/artifacts/TARGET/ (reproduce
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...`).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(frame_stream frame_messages sealed_stream handshake flag_file command_line)
[[ $# -ge 1 ]] && targets=("$1")
seconds=${2:-${FUZZ_SECONDS:-50}}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is not installed (cargo install --locked cargo-fuzz@0.13.1); skipping the fuzzing"
    exit 0
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build -O >/dev/null 2>&1 || cargo fuzz build -O
failed=()
for t in "${targets[@]}"; do
    corpus=../target/fuzz-corpus/$t
    mkdir -p "$corpus"
    log=../target/fuzz-corpus/$t.log
    # -timeout: one input taking 10 s is a hang; -max_len 64 KiB covers frames across reads.
    if cargo fuzz run -O "$t" "$corpus" "seeds/$t" -- -max_total_time="$seconds" \
        -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
        echo "fuzz.sh: $t: $runs runs in ${seconds} s, no crash"
    else
        echo "fuzz.sh: $t: FAILED; log tail:"
        grep -v '^#[0-9]\|^\s*NEW_FUNC\|^INFO' "$log" | tail -n 30
        failed+=("$t")
    fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: crashes or hangs in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
