#!/usr/bin/env bash
# Builds the release binary and the .deb and .rpm packages into target/packages/.
#
#   bash scripts/package.sh                               # this machine's architecture
#   bash scripts/package.sh aarch64-unknown-linux-gnu     # BlueField Arm cores (.cargo/config.toml
#                                                         # names the cross linker)
#
# Needs cargo-deb and cargo-generate-rpm (cargo install --locked cargo-deb@3.8.0
# cargo-generate-rpm@0.21.1), dpkg-shlibdeps (dpkg-dev) for the .deb's Depends, rpm for the
# .rpm's Requires, and readelf (binutils) for cross builds.
# Prints the path of each package, one per line, on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:-}"
out=target/packages
target_args=()
if [[ -n "$target" ]]; then
    target_args=(--target "$target")
fi

# The .rpm's Requires come from rpm's own find-requires (Debian package rpm): it reads the ELF
# symbol versions of any architecture. cargo-generate-rpm's fallback runs ldd, which yields
# nothing at all for a cross-built binary.
if [[ ! -x /usr/lib/rpm/find-requires ]]; then
    echo "package.sh: /usr/lib/rpm/find-requires is missing (apt-get install rpm)" >&2
    exit 1
fi
for tool in deb generate-rpm; do
    if ! cargo "$tool" --version >/dev/null 2>&1; then
        echo "package.sh: cargo-$tool is not installed (cargo install --locked cargo-$tool)" >&2
        exit 1
    fi
done

# --locked: package exactly what Cargo.lock pins.
cargo build --release --locked "${target_args[@]}" >&2
mkdir -p "$out"

# Both tools take the binary from target/release/ or, with --target, target/<triple>/release/.
# [profile.release] strip = true, so cargo-deb has nothing to strip (no foreign strip needed).
deb=$(cargo deb --no-build --locked "${target_args[@]}" --output "$out/" | tail -n 1)

# Cross builds: dpkg-shlibdeps reads Debian's libc6-<arch>-cross package, which has a shlibs file
# but no symbols file, so the Depends it yields is "libc6:arm64 (>= <the build host's glibc>)"
# (2.36 on Debian 12): too high for a BlueField running Ubuntu 22.04 (glibc 2.35), although the
# binary needs far less. Rewrite it to the newest GLIBC_ symbol version the binary really uses,
# which is what the symbols file gives for native builds.
if [[ -n "$target" ]]; then
    bin="target/$target/release/doca_socket_relay"
    floor=$(readelf -V --wide "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' |
        sort -u -V | tail -n 1)
    if [[ -z "$floor" ]]; then
        echo "package.sh: no GLIBC_ symbol versions found in $bin" >&2
        exit 1
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    dpkg-deb --raw-extract "$deb" "$work/pkg"
    sed -i -E "s/^(Depends:.*)libc6(:[a-z0-9]+)? \\(>= [^)]*\\)/\\1libc6 (>= $floor)/" \
        "$work/pkg/DEBIAN/control"
    echo "package.sh: $(grep '^Depends:' "$work/pkg/DEBIAN/control") (from the binary's symbol versions)" >&2
    # Keep cargo-deb's timestamps (extracting touched the directories).
    stamp=$(stat -c %Y "$work/pkg/usr/bin/doca_socket_relay")
    find "$work/pkg" -exec touch -h -d "@$stamp" {} +
    dpkg-deb --root-owner-group -Zxz --build "$work/pkg" "$deb" >/dev/null
fi

# cargo-generate-rpm prints nothing; find the file it wrote by its arch.
cargo generate-rpm --auto-req find-requires "${target_args[@]}" --output "$out/" >&2
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(uname -m)
[[ -n "$target" ]] && arch="${target%%-*}"
rpm="$out/doca-socket-relay-$version-1.$arch.rpm"

for f in "$deb" "$rpm"; do
    if [[ ! -f "$f" ]]; then
        echo "package.sh: expected package $f was not written" >&2
        exit 1
    fi
    echo "$f"
done
