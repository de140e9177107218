#!/usr/bin/env bash
# Runs a Windows program under Wine: the cargo runner for x86_64-pc-windows-gnu
# (.cargo/config.toml) and what scripts/windows.sh starts the Windows relay with.
#
# The Wine prefix lives in a temporary directory (WINEPREFIX, default /tmp/dsr-wine-$UID),
# created on first use (~10 s). Wine 8.0 has no bcryptprimitives.dll, from which Rust's
# standard library takes random bytes: a small stand-in (scripts/wine/bcryptprimitives.c,
# built with mingw-w64) is installed into the prefix once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export WINEDEBUG=${WINEDEBUG:--all}
export WINEPREFIX=${WINEPREFIX:-/tmp/dsr-wine-$(id -u)}
sys32=$WINEPREFIX/drive_c/windows/system32
if [ ! -e "$sys32/bcryptprimitives.dll" ]; then
    mkdir -p "$WINEPREFIX"
    wineboot --init >/dev/null 2>&1 || true
    wineserver -w || true
    dll=$root/target/wine/bcryptprimitives.dll
    mkdir -p "$(dirname "$dll")"
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" "$root/scripts/wine/bcryptprimitives.c" -ladvapi32
    cp "$dll" "$sys32/bcryptprimitives.dll"
fi
exec wine "$@"
