#!/usr/bin/env bash
# Builds (and with --test, tests) doca_socket_relay for the BlueField Arm cores on a Debian or
# Ubuntu machine without Docker: rustup's aarch64 target, Debian's cross gcc as the linker
# (.cargo/config.toml) and qemu-user to run the test binaries.
#
#   bash cross/build.sh           # target/aarch64-unknown-linux-gnu/release/doca_socket_relay
#   bash cross/build.sh --test    # also runs the whole test suite under qemu-aarch64
#
# Needs: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null || {
        echo "cross/build.sh: $tool is missing (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)" >&2
        exit 1
    }
done
rustup target add "$TARGET" >/dev/null
cargo build --release --target "$TARGET"
bin=target/$TARGET/release/doca_socket_relay
echo "built $bin ($(stat -c %s "$bin") bytes)"
if [ "${1:-}" = "--test" ]; then
    # The tests start the relay binary themselves; without binfmt_misc the kernel cannot run
    # an aarch64 binary, so they put qemu in front of it.
    # One test at a time: forking from a multi-threaded program under qemu-user can leave the
    # child stuck before its exec.
    DSR_TEST_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" cargo test --target "$TARGET" -- --test-threads=1
fi
