#!/usr/bin/env bash
# Finds, and on Debian installs, what the build and the QEMU runs need.
#
#   scripts/deps.sh rust|qemu|gdb ...   ensure each is present (install if root)
#   scripts/deps.sh env                 print shell assignments for the cross
#                                       toolchain: CROSS_RUSTC=... CROSS_CARGO=...
#
# The kernel is built with -Zbuild-std, so it needs a Rust whose library source
# is installed: Debian's rustc-web/cargo-web/rust-web-src (+ lld-22 for
# rust-lld), or a rustup nightly with the rust-src component. RUSTC/CARGO in the
# environment take precedence.
set -euo pipefail

has_library_source() {  # $1 = rustc
    local sysroot
    sysroot=$("$1" --print sysroot 2>/dev/null) || return 1
    [ -f "$sysroot/lib/rustlib/src/rust/library/core/src/lib.rs" ]
}

cargo_for() {  # the cargo that belongs to rustc $1
    local dir; dir=$(dirname "$(command -v "$1")")
    if [ -x "$dir/cargo" ]; then echo "$dir/cargo"; else command -v cargo; fi
}

find_rust() {
    if [ -n "${RUSTC:-}" ] && has_library_source "$RUSTC"; then
        echo "CROSS_RUSTC=$RUSTC CROSS_CARGO=${CARGO:-$(cargo_for "$RUSTC")}"; return 0
    fi
    if command -v rustc >/dev/null && has_library_source rustc; then
        echo "CROSS_RUSTC=$(command -v rustc) CROSS_CARGO=$(cargo_for rustc)"; return 0
    fi
    if [ -x /usr/bin/rustc ] && has_library_source /usr/bin/rustc; then
        echo "CROSS_RUSTC=/usr/bin/rustc CROSS_CARGO=/usr/bin/cargo"; return 0
    fi
    return 1
}

# QEMU >= 9.1 fixes a broadcast-tlbie race that looks like a kernel bug in
# cross-CPU tests; Debian 12 ships 7.2, bookworm-backports 10.x.
qemu_version_ok() {
    local v; v=$("${QEMU:-qemu-system-ppc64}" --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p') || return 1
    [ -n "$v" ] || return 1
    set -- $v
    [ "$1" -gt 9 ] || { [ "$1" -eq 9 ] && [ "$2" -ge 1 ]; }
}

apt_updated=
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "error: missing $*; install it (on Debian 12: sudo apt-get install $*) and run make again." >&2
        exit 1
    fi
    if [ -z "$apt_updated" ]; then
        apt-get update -qq >&2
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_backports() {
    . /etc/os-release 2>/dev/null || return 1
    [ "${VERSION_CODENAME:-}" = bookworm ] || return 1
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        [ "$(id -u)" = 0 ] || return 1
        echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
        apt_updated=
    fi
}

ensure_rust() {
    find_rust >/dev/null && return 0
    echo "deps: no Rust with library source for -Zbuild-std; installing Debian's rustc-web" >&2
    apt_install rustc-web cargo-web rust-web-src lld-22
    find_rust >/dev/null || { echo "error: rustc-web installed but its library source was not found" >&2; exit 1; }
}

ensure_qemu() {
    if [ -n "${QEMU:-}" ]; then
        command -v "$QEMU" >/dev/null || { echo "error: QEMU=$QEMU not found" >&2; exit 1; }
        return 0
    fi
    qemu_version_ok && return 0
    if ensure_backports; then
        echo "deps: installing qemu-system-ppc from bookworm-backports (QEMU >= 9.1)" >&2
        if [ -z "$apt_updated" ]; then apt-get update -qq >&2; apt_updated=1; fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-ppc >&2 && return 0
    fi
    command -v qemu-system-ppc64 >/dev/null && { echo "deps: using $(qemu-system-ppc64 --version | head -1) (older than 9.1)" >&2; return 0; }
    apt_install qemu-system-ppc
}

for what in "$@"; do
    case "$what" in
        rust) ensure_rust ;;
        qemu) ensure_qemu ;;
        gdb) command -v gdb-multiarch >/dev/null || apt_install gdb-multiarch ;;
        env) find_rust || { echo "error: no Rust with library source (run scripts/deps.sh rust)" >&2; exit 1; } ;;
        *) echo "usage: $0 rust|qemu|gdb|env ..." >&2; exit 2 ;;
    esac
done
