#!/usr/bin/env bash
# Checks the packages scripts/package.sh wrote to target/packages/.
#
#   bash scripts/check-packages.sh                              # this machine's packages
#   bash scripts/check-packages.sh aarch64-unknown-linux-gnu    # also, or only, other targets
#
# For every target: the .deb's control fields, Depends, maintainer scripts and file list; the
# .rpm's header, digests, file list, scriptlets and Requires; the ELF machine of the binary in
# both; the unit files in both equal to systemd/. For this machine's own target it then installs
# the .deb for real (dpkg -i, as root): files, user, group, config directory, --version,
# systemd-analyze verify of the installed units, the shipped example configs, a reinstall
# (the upgrade path), dpkg -r and dpkg -P.
#
# Needs (Debian/Ubuntu packages): dpkg-dev (dpkg-deb), rpm (rpm, rpm2archive), file, binutils
# (readelf), systemd (systemd-analyze, systemd-sysusers). Exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=doca-socket-relay
BIN=doca_socket_relay
UNITS=("$PKG@.service" "$PKG@.socket" "$PKG.target")
DOCS=(README.md PROTOCOL.md README.packaging.md docs/DESIGN.md docs/DOCA.md docs/SECURITY.md
    examples/example.json examples/example-dpu.json)

fail() {
    echo "check-packages: FAIL: $*" >&2
    exit 1
}
ok() { echo "check-packages: ok: $*"; }

for tool in dpkg-deb rpm rpm2archive file readelf systemd-analyze; do
    command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install dpkg-dev rpm file binutils systemd)"
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
host_triple=$(rustc -vV | sed -n 's/^host: //p')
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("$host_triple")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The newest GLIBC_x.y symbol version a binary needs: the floor its packages must declare.
glibc_floor() {
    local floor
    floor=$(readelf -V --wide "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -u -V | tail -n 1)
    [[ -n "$floor" ]] || fail "$1: no GLIBC_ symbol versions found"
    echo "$floor"
}

# $1: file list (one absolute path per line), $2: package file, for messages.
check_file_list() {
    local list=$1 what=$2 path unit
    grep -qx "/usr/bin/$BIN" "$list" || fail "$what: no /usr/bin/$BIN"
    for unit in "${UNITS[@]}"; do
        grep -Eqx "(/usr)?/lib/systemd/system/$unit" "$list" || fail "$what: no unit $unit"
    done
    grep -qx "/usr/lib/sysusers.d/$PKG.conf" "$list" || fail "$what: no sysusers.d/$PKG.conf"
    for path in "${DOCS[@]}"; do
        grep -qx "/usr/share/doc/$PKG/$path" "$list" || fail "$what: no /usr/share/doc/$PKG/$path"
    done
    grep -Eqx "/usr/share/man/man1/$BIN\.1(\.gz)?" "$list" || fail "$what: no man page $BIN.1"
    grep -Eqx "/usr/share/doc/$PKG/(changelog\.gz|CHANGELOG\.md)" "$list" || fail "$what: no changelog"
    if grep -q '^/etc/' "$list"; then
        fail "$what: ships files in /etc (instances are configured by the admin): $(grep '^/etc/' "$list")"
    fi
}

# $1: extracted package root, $2: expected `file` machine text, $3: package file.
check_payload() {
    local root=$1 machine=$2 what=$3 unit desc
    desc=$(file -b "$root/usr/bin/$BIN")
    [[ "$desc" == *"ELF 64-bit"*"$machine"* ]] || fail "$what: $BIN is not a $machine ELF: $desc"
    for unit in "${UNITS[@]}"; do
        local packaged="$root/usr/lib/systemd/system/$unit"
        [[ -f "$packaged" ]] || packaged="$root/lib/systemd/system/$unit"
        cmp -s "$packaged" "systemd/$unit" || fail "$what: $unit differs from systemd/$unit (stale package?)"
    done
    cmp -s "$root/usr/lib/sysusers.d/$PKG.conf" "packaging/$PKG.sysusers" ||
        fail "$what: sysusers.d/$PKG.conf differs from packaging/$PKG.sysusers"
}

check_deb() {
    local deb=$1 debarch=$2 machine=$3 dir=$tmp/deb-$2 field script floor
    [[ -f "$deb" ]] || fail "$deb not found (run scripts/package.sh first)"
    dpkg-deb --info "$deb" >/dev/null || fail "$deb: dpkg-deb --info failed"
    mkdir -p "$dir/ctrl" "$dir/root"
    dpkg-deb --extract "$deb" "$dir/root"
    check_payload "$dir/root" "$machine" "$deb"
    floor=$(glibc_floor "$dir/root/usr/bin/$BIN")
    [[ "$(dpkg-deb --field "$deb" Package)" == "$PKG" ]] || fail "$deb: wrong Package"
    [[ "$(dpkg-deb --field "$deb" Version)" == "$version-1" ]] || fail "$deb: Version is not $version-1"
    field=$(dpkg-deb --field "$deb" Architecture)
    [[ "$field" == "$debarch" ]] || fail "$deb: Architecture is $field, expected $debarch"
    field=$(dpkg-deb --field "$deb" Depends)
    [[ "$field" == *"libc6 (>= $floor)"* ]] ||
        fail "$deb: Depends is '$field', expected libc6 (>= $floor) (the binary's newest GLIBC_ symbol)"
    local summary
    summary=$(dpkg-deb --field "$deb" Description | head -n 1)
    ((${#summary} < 80)) || fail "$deb: the short description is ${#summary} characters (under 80): $summary"
    dpkg-deb --control "$deb" "$dir/ctrl"
    for script in postinst prerm postrm; do
        [[ -x "$dir/ctrl/$script" ]] || fail "$deb: no executable $script"
        sh -n "$dir/ctrl/$script" || fail "$deb: $script is not valid sh"
    done
    dpkg-deb --contents "$deb" | awk '{print $NF}' | sed 's#^\./#/#; s#/$##' >"$dir/list"
    check_file_list "$dir/list" "$deb"
    ok "$deb: $debarch, Depends: $field, contents, scripts, ELF $machine"
}

check_rpm() {
    local rpm=$1 arch=$2 machine=$3 dir=$tmp/rpm-$2 tag head floor
    [[ -f "$rpm" ]] || fail "$rpm not found (run scripts/package.sh first)"
    rpm -K --nosignature "$rpm" >/dev/null || fail "$rpm: digest check failed"
    mkdir -p "$dir/root"
    rpm2archive - <"$rpm" | tar -xz -C "$dir/root"
    check_payload "$dir/root" "$machine" "$rpm"
    floor=$(glibc_floor "$dir/root/usr/bin/$BIN")
    rpm -qpi "$rpm" >/dev/null || fail "$rpm: rpm -qpi failed"
    head=$(rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE} %{ARCH}' "$rpm")
    [[ "$head" == "$PKG $version 1 $arch" ]] || fail "$rpm: header says '$head', expected '$PKG $version 1 $arch'"
    rpm -qpl "$rpm" >"$dir/list"
    check_file_list "$dir/list" "$rpm"
    rpm -qp --scripts "$rpm" >"$dir/scripts"
    for tag in postinstall preuninstall postuninstall; do
        grep -q "^$tag scriptlet" "$dir/scripts" || fail "$rpm: no $tag scriptlet"
    done
    for tag in POSTIN PREUN POSTUN; do
        rpm -qp --qf "%{$tag}\n" "$rpm" >"$dir/$tag.sh"
        sh -n "$dir/$tag.sh" || fail "$rpm: %$tag scriptlet is not valid sh"
    done
    rpm -qpR "$rpm" | grep -qx "libc.so.6(GLIBC_$floor)(64bit)" ||
        fail "$rpm: Requires lack libc.so.6(GLIBC_$floor)(64bit): $(rpm -qpR "$rpm" | tr '\n' ' ')"
    ok "$rpm: $arch, Requires libc GLIBC_$floor, contents, scriptlets, ELF $machine"
}

# Installs, upgrades (reinstalls), removes and purges the native .deb. Leaves the system user
# behind, as a real removal does.
install_test() {
    local deb=$1 out rc unit example
    if dpkg-query -W -f '${db:Status-Status}' "$PKG" 2>/dev/null | grep -qv '^not-installed$'; then
        echo "check-packages: $PKG is installed already; purging it first"
        dpkg --purge "$PKG" >/dev/null || fail "dpkg --purge of the old $PKG failed"
    fi

    dpkg --install "$deb" || fail "dpkg --install $deb failed"
    [[ -x "/usr/bin/$BIN" ]] || fail "/usr/bin/$BIN missing after install"
    for unit in "${UNITS[@]}"; do
        [[ -f "/usr/lib/systemd/system/$unit" || -f "/lib/systemd/system/$unit" ]] ||
            fail "unit $unit missing after install"
    done
    [[ -f "/usr/lib/sysusers.d/$PKG.conf" ]] || fail "sysusers.d/$PKG.conf missing after install"
    getent passwd "$PKG" >/dev/null || fail "user $PKG was not created"
    getent group "$PKG" >/dev/null || fail "group $PKG was not created"
    [[ "$(stat -c '%U:%G %a' "/etc/$PKG")" == "root:$PKG 750" ]] ||
        fail "/etc/$PKG is $(stat -c '%U:%G %a' "/etc/$PKG" 2>&1), expected root:$PKG 750"
    if command -v systemctl >/dev/null; then
        [[ -L "/etc/systemd/system/multi-user.target.wants/$PKG.target" ]] ||
            fail "$PKG.target was not enabled on first install"
    fi
    out=$("$BIN" --version) || fail "$BIN --version failed"
    [[ "$out" == *"$version"* ]] || fail "$BIN --version printed '$out', not $version"
    ok "installed: /usr/bin/$BIN ($(head -n 1 <<<"$out")), units, sysusers, user and group $PKG, /etc/$PKG, target enabled"

    # systemd-analyze verify loads the installed units by name, as systemd would, and checks
    # every directive and that ExecStart's binary exists. It needs no running systemd. It exits 0
    # on unknown or malformed directives (it only warns), so any output is a failure too.
    out=$(systemd-analyze verify "$PKG@check.service" "$PKG@check.socket" "$PKG.target" 2>&1) &&
        rc=0 || rc=$?
    if [[ $rc -ne 0 || -n "$out" ]]; then
        fail "systemd-analyze verify (exit $rc): $out"
    fi
    ok "systemd-analyze verify: no findings for $PKG@check.service, $PKG@check.socket, $PKG.target"
    out=$(systemd-analyze security --offline=true "/usr/lib/systemd/system/$PKG@.service" 2>/dev/null |
        tail -n 1) || true
    [[ -z "$out" ]] || echo "check-packages: info: systemd-analyze security: ${out#→ }"

    # The shipped examples pass the relay's own validation: exit code 2 means a config error.
    # Their key and socket directory are moved into $tmp (a missing socket directory is exit 2
    # too); exit 1 or the timeout is expected here (the DPU address does not answer).
    "$BIN" --gen-key "$tmp/check.key" 2>/dev/null
    for example in example.json example-dpu.json; do
        sed -e "s#/etc/$PKG/myapp.key#$tmp/check.key#" -e "s#/run/$PKG/myapp/#$tmp/#" \
            "/usr/share/doc/$PKG/examples/$example" >"$tmp/$example"
        out=$(timeout 5 "$BIN" --json "$tmp/$example" 2>&1) && rc=0 || rc=$?
        case $rc in
        0 | 1 | 124) ;;
        *) fail "examples/$example: $BIN exited $rc: $out" ;;
        esac
    done
    ok "examples/example.json and example-dpu.json pass the relay's config validation"

    # The upgrade path: configure with a previous version ($2 set).
    dpkg --install "$deb" >/dev/null || fail "reinstalling $deb (upgrade path) failed"
    ok "reinstall over the installed package (upgrade path)"

    # An admin's instance config and enabled instance: removal keeps the config, purge removes
    # the enablement symlinks.
    cp "/usr/share/doc/$PKG/examples/example.json" "/etc/$PKG/check.json"
    if command -v systemctl >/dev/null; then
        systemctl --no-reload enable "$PKG@check.service" >/dev/null 2>&1 ||
            fail "systemctl enable $PKG@check.service failed"
    fi

    dpkg --remove "$PKG" || fail "dpkg --remove $PKG failed"
    [[ ! -e "/usr/bin/$BIN" ]] || fail "/usr/bin/$BIN left behind by dpkg --remove"
    for unit in "${UNITS[@]}"; do
        [[ ! -e "/usr/lib/systemd/system/$unit" && ! -e "/lib/systemd/system/$unit" ]] ||
            fail "unit $unit left behind by dpkg --remove"
    done
    [[ ! -e "/usr/lib/sysusers.d/$PKG.conf" ]] || fail "sysusers.d/$PKG.conf left behind by dpkg --remove"
    ok "dpkg --remove: binary, units and sysusers.d file gone"

    dpkg --purge "$PKG" || fail "dpkg --purge $PKG failed"
    [[ "$(dpkg-query -W -f '${db:Status-Status}' "$PKG" 2>/dev/null || true)" =~ ^(not-installed)?$ ]] ||
        fail "$PKG still known to dpkg after --purge"
    out=$(find /etc/systemd/system -path "*.wants/$PKG*" 2>/dev/null)
    [[ -z "$out" ]] || fail "enablement symlinks left after --purge: $out"
    [[ -f "/etc/$PKG/check.json" ]] || fail "--purge deleted the admin's /etc/$PKG/check.json"
    rm -f "/etc/$PKG/check.json"
    rmdir "/etc/$PKG"
    ok "dpkg --purge: enablement symlinks gone, the admin's instance config kept"
}

for triple in "${targets[@]}"; do
    arch=${triple%%-*}
    case $arch in
    x86_64) debarch=amd64 machine=x86-64 ;;
    aarch64) debarch=arm64 machine="ARM aarch64" ;;
    *) fail "unsupported target $triple" ;;
    esac
    deb=target/packages/${PKG}_$version-1_$debarch.deb
    rpm=target/packages/$PKG-$version-1.$arch.rpm
    check_deb "$deb" "$debarch" "$machine"
    check_rpm "$rpm" "$arch" "$machine"
    if [[ "$triple" == "$host_triple" ]]; then
        [[ $(id -u) -eq 0 ]] || fail "the install test needs root (dpkg -i)"
        install_test "$deb"
    fi
done
echo "check-packages: all checks passed for ${targets[*]}"
