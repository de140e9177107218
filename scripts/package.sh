#!/usr/bin/env bash
# Builds the release binary and the .deb and/or .rpm package into target/packages/.
#
#   bash scripts/package.sh                               # both, this machine's architecture
#   bash scripts/package.sh deb                           # only the .deb (needs only cargo-deb)
#   bash scripts/package.sh rpm                           # only the .rpm (only cargo-generate-rpm)
#   bash scripts/package.sh aarch64-unknown-linux-gnu     # BlueField Arm cores (.cargo/config.toml
#   bash scripts/package.sh deb aarch64-unknown-linux-gnu # names the cross linker)
#
# Needs, for the .deb: cargo-deb (cargo install --locked cargo-deb@3.8.0) and dpkg-shlibdeps
# (dpkg-dev) for its Depends; for the .rpm: cargo-generate-rpm (cargo install --locked
# cargo-generate-rpm@0.21.1) and rpm for its Requires; readelf (binutils) for cross builds.
# Prints the path of each package, one per line, on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: bash scripts/package.sh [deb|rpm] [TARGET-TRIPLE]"
target=""
kinds=()
for arg in "$@"; do
    case $arg in
    deb | rpm) kinds+=("$arg") ;;
    -h | --help)
        echo "$usage"
        exit 0
        ;;
    -*)
        echo "package.sh: unknown option $arg; $usage" >&2
        exit 2
        ;;
    *)
        if [[ -n "$target" ]]; then
            echo "package.sh: two targets ($target, $arg); $usage" >&2
            exit 2
        fi
        target=$arg
        ;;
    esac
done
[[ ${#kinds[@]} -gt 0 ]] || kinds=(deb rpm)
want() { [[ " ${kinds[*]} " == *" $1 "* ]]; }

out=target/packages
target_args=()
if [[ -n "$target" ]]; then
    target_args=(--target "$target")
fi

# The .rpm's Requires come from rpm's own find-requires (Debian package rpm): it reads the ELF
# symbol versions of any architecture. cargo-generate-rpm's fallback runs ldd, which yields
# nothing at all for a cross-built binary.
# Every missing tool is named before anything is built.
missing=()
if want rpm; then
    [[ -x /usr/lib/rpm/find-requires ]] || missing+=("/usr/lib/rpm/find-requires (apt-get install rpm)")
    cargo generate-rpm --version >/dev/null 2>&1 ||
        missing+=("cargo-generate-rpm (cargo install --locked cargo-generate-rpm@0.21.1)")
fi
if want deb; then
    command -v dpkg-shlibdeps >/dev/null || missing+=("dpkg-shlibdeps (apt-get install dpkg-dev)")
    cargo deb --version >/dev/null 2>&1 || missing+=("cargo-deb (cargo install --locked cargo-deb@3.8.0)")
    if [[ -n "$target" ]]; then
        command -v readelf >/dev/null || missing+=("readelf (apt-get install binutils)")
    fi
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    for m in "${missing[@]}"; do
        echo "package.sh: missing: $m" >&2
    done
    exit 1
fi

# --locked: package exactly what Cargo.lock pins.
cargo build --release --locked "${target_args[@]}" >&2
mkdir -p "$out"

# Both tools take the binary from target/release/ or, with --target, target/<triple>/release/.
# [profile.release] strip = true, so cargo-deb has nothing to strip (no foreign strip needed).
build_deb() {
    local deb
    deb=$(cargo deb --no-build --locked "${target_args[@]}" --output "$out/" | tail -n 1)
    # Cross builds: dpkg-shlibdeps reads Debian's libc6-<arch>-cross package, which has a shlibs
    # file but no symbols file, so the Depends it yields is "libc6:arm64 (>= <the build host's
    # glibc>)" (2.36 on Debian 12): too high for a BlueField running Ubuntu 22.04 (glibc 2.35),
    # although the binary needs far less. Rewrite it to the newest GLIBC_ symbol version the
    # binary really uses, which is what the symbols file gives for native builds.
    if [[ -n "$target" ]]; then
        local bin="target/$target/release/doca_socket_relay" floor stamp
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
    written "$deb"
}

build_rpm() {
    local version arch
    # cargo-generate-rpm prints nothing; find the file it wrote by its arch.
    cargo generate-rpm --auto-req find-requires "${target_args[@]}" --output "$out/" >&2
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
    arch=$(uname -m)
    [[ -n "$target" ]] && arch="${target%%-*}"
    written "$out/doca-socket-relay-$version-1.$arch.rpm"
}

written() {
    if [[ ! -f "$1" ]]; then
        echo "package.sh: expected package $1 was not written" >&2
        exit 1
    fi
    echo "$1"
}

if want deb; then build_deb; fi
if want rpm; then build_rpm; fi
