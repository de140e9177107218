#!/usr/bin/env bash
# The Windows zip: target/doca-socket-relay-VERSION-x86_64-windows.zip with the .exe, the
# README, a Windows README and the example configuration. Builds the release .exe first.
set -euo pipefail
cd "$(dirname "$0")/.."
T=x86_64-pc-windows-gnu
cargo build --release --target $T
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name=doca-socket-relay-$version-x86_64-windows
stage=target/$name
rm -rf "$stage" "target/$name.zip"
mkdir -p "$stage"
cp "target/$T/release/doca_socket_relay.exe" README.md LICENSE "$stage/"
cp packaging/windows/README.windows.md "$stage/"
cp packaging/example-windows.json "$stage/example.json"
(cd target && zip -qr "$name.zip" "$name")
rm -rf "$stage"
python3 -m zipfile -l "target/$name.zip"
