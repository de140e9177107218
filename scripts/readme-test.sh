#!/usr/bin/env bash
# Runs the documentation's commands as a reader pastes them, so that they cannot drift from the
# product:
#
#   1. README.md, "## Quick start": the code block verbatim, fed to a fresh
#      `bash --norc --noprofile` under `env -i` with umask 0022; it must print the relayed reply
#      (a line HELLO);
#   2. README.md, "## Configure": the JSON flag file through `--check`, with its /run and /etc
#      paths moved into a temporary directory and its key made by `--gen-key`; must exit 0;
#   3. docs/DOCA.md, the fake-library recipe: verbatim over the fake Comch, then with its build
#      lines replaced by the Comm Channel ones the text gives, as the text says; each must print
#      HELLO and name the library it ran on.
#
#   bash scripts/readme-test.sh
#
# Not run here: installing the package and systemd (scripts/check-packages.sh and
# scripts/systemd-container-test.sh cover them) and commands for a real DPU.
#
# The fresh shell gets HOME (a temporary one: `cargo install` puts the binary there, not in your
# ~/.cargo/bin), PATH, TMPDIR (so the blocks' mktemp directories are removed with ours),
# CARGO_HOME and RUSTUP_HOME (your toolchain and crate cache, so the build is reused from target/)
# and CARGO_INSTALL_ROOT=$HOME/.cargo (where the block expects the binary). Each block runs under
# `timeout` in a process group of its own; whatever it leaves running is killed and fails the
# test. Environment: README_TEST_TIMEOUT seconds per block [900: the first build is in it].
# Needs what the Quick start needs, plus gcc for the DOCA recipe and procps (pgrep).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LIMIT=${README_TEST_TIMEOUT:-900}

tmp=$(mktemp -d /tmp/readme-test.XXXXXX)
home=$tmp/home
mkdir -p "$home" "$tmp/tmp"
group="" # process group of the block running now

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $group ]]; then
        kill -KILL -- "-$group" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "readme-test: FAIL: $*" >&2
    exit 1
}

# extract FILE HEADING N [LANG]: the Nth fenced code block (whose fence names LANG, when given)
# between the line HEADING and the next heading of FILE.
extract() {
    awk -v heading="$2" -v want="$3" -v lang="${4:-}" '
        !fence && $0 == heading { in_section = 1; next }
        !fence && in_section && /^#/ { exit }
        in_section && /^```/ {
            if (fence) { fence = 0; if (n == want) exit; next }
            fence = 1
            if (lang == "" || $0 == "```" lang) n++
            next
        }
        fence && n == want { print }
    ' "$1"
}

# block FILE HEADING N [LANG] > OUT: as extract, failing when there is no such block.
block() {
    local text
    text=$(extract "$@")
    [[ -n $text ]] || fail "no code block $3 under '$2' in $1"
    printf '%s\n' "$text"
}

# run NAME SCRIPT: runs SCRIPT in a fresh shell as described above; its output goes to
# $tmp/NAME.out. Fails on a non-zero exit, a timeout or a process left running.
run() {
    local name=$1 script=$2 out=$tmp/$1.out rc=0 left
    local cargo_home=${CARGO_HOME:-$HOME/.cargo} rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
    local envs=(HOME="$home" PATH="$PATH" TMPDIR="$tmp/tmp" CARGO_HOME="$cargo_home"
        CARGO_INSTALL_ROOT="$home/.cargo")
    [[ -d $rustup_home ]] && envs+=(RUSTUP_HOME="$rustup_home")
    [[ -n ${CARGO_TARGET_DIR:-} ]] && envs+=(CARGO_TARGET_DIR="$CARGO_TARGET_DIR")
    echo "readme-test: $name"
    # timeout makes itself the leader of a new process group (so its pid is the group's id),
    # and the block's background jobs stay in that group: one kill reaches them all.
    (
        umask 0022
        exec timeout -k 10 "$LIMIT" env -i "${envs[@]}" bash --norc --noprofile
    ) <"$script" >"$out" 2>&1 &
    group=$!
    wait "$group" || rc=$?
    left=$(pgrep -a -g "$group" || true)
    kill -KILL -- "-$group" 2>/dev/null || true
    group=""
    if ((rc != 0)) || [[ -n $left ]]; then
        echo "--- last lines of $name's output ---" >&2
        tail -n 40 "$out" >&2
        ((rc != 124)) || fail "$name: still running after ${LIMIT} s"
        ((rc == 0)) || fail "$name: exited with status $rc"
        fail "$name: left processes running (killed now):"$'\n'"$left"
    fi
}

# expect NAME PATTERN WHAT: NAME's output has a line matching the extended regex PATTERN.
expect() {
    if ! grep -Eq "$2" "$tmp/$1.out"; then
        echo "--- last lines of $1's output ---" >&2
        tail -n 40 "$tmp/$1.out" >&2
        fail "$1: $3 (no line matching '$2')"
    fi
}

# 1. The Quick start.
block README.md "## Quick start" 1 sh >"$tmp/quickstart.sh"
run quickstart "$tmp/quickstart.sh"
expect quickstart '^HELLO$' "the relayed reply was not printed"
relay=$home/.cargo/bin/doca_socket_relay
[[ -x $relay ]] || fail "the Quick start did not install $relay"
echo "readme-test: ok: the Quick start printed the relayed reply and stopped everything"

# 2. The JSON flag file, checked by the binary the Quick start installed.
mkdir -p "$tmp/run" "$tmp/etc"
block README.md "## Configure" 1 json |
    sed -e "s#\"/run/#\"$tmp/run/#" -e "s#\"/etc/doca-socket-relay/#\"$tmp/etc/#" >"$tmp/flags.json"
grep -q "$tmp/etc/" "$tmp/flags.json" || fail "README's JSON example names no key under /etc/doca-socket-relay/"
key=$(sed -n 's/.*"psk-file": "\([^"]*\)".*/\1/p' "$tmp/flags.json")
(umask 0022 && "$relay" --gen-key "$key") || fail "--gen-key $key failed"
out=$(timeout 20 "$relay" --check --json "$tmp/flags.json" 2>&1) ||
    fail "README's JSON example does not pass --check (exit $?):"$'\n'"$out"
echo "readme-test: ok: README's JSON example passes --check"

# 3. The fake-DOCA recipe, over Comch as written, then over Comm Channel as the text says: its
# t=, F= and two cc lines replaced by the second block.
heading="## Try the DOCA channels by hand, with the fake libraries"
block docs/DOCA.md "$heading" 1 sh >"$tmp/doca-comch.sh"
block docs/DOCA.md "$heading" 2 sh >"$tmp/doca-cc-build.sh"
run doca-comch "$tmp/doca-comch.sh"
expect doca-comch '^HELLO$' "the reply relayed over the fake Comch was not printed"
expect doca-comch '^DOCA Comch \(libdoca_comch' "-v did not name the fake Comch library"
awk -v build="$tmp/doca-cc-build.sh" '
    /^(t=|F=|cc )/ { if (!done) { while ((getline line < build) > 0) print line; done = 1 } next }
    { print }
' "$tmp/doca-comch.sh" >"$tmp/doca-cc.sh"
grep -q 'fake_comm_channel.c' "$tmp/doca-cc.sh" || fail "the Comm Channel build lines were not substituted"
run doca-comm-channel "$tmp/doca-cc.sh"
expect doca-comm-channel '^HELLO$' "the reply relayed over the fake Comm Channel was not printed"
expect doca-comm-channel '^DOCA Comm Channel \(libdoca_comm_channel' "-v did not name the fake Comm Channel library"
echo "readme-test: ok: docs/DOCA.md's recipe relayed over the fake Comch and Comm Channel"
echo "readme-test: all passed"
