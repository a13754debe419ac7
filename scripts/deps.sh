#!/usr/bin/env bash
# Finds, and on Debian 12 installs, every tool the build and the tests call, then
# checks that each one is there; a missing one is named in one sentence.
#
#   scripts/deps.sh rust|qemu|gdb|objdump|lint ...   ensure each is present (installed if root)
#   scripts/deps.sh env                 print shell assignments for the cross
#                                       toolchain: CROSS_RUSTC=... CROSS_CARGO=...
#
#   rust  a rustc at least as new as Cargo.toml's rust-version whose sysroot has
#         lib/rustlib/src/rust/library (-Zbuild-std), the cargo beside it,
#         rust-lld (the linker of arch/ppc64/powerpc64le-kernel.json), and the
#         host cargo (the Makefile's HOST_CARGO: cargo on PATH, else /usr/bin/cargo).
#         RUSTC/CARGO in the environment take precedence; otherwise rustc on PATH
#         (e.g. a rustup toolchain with rust-src), then /usr/bin/rustc. Installed:
#         Debian's rustc-web cargo-web rust-web-src rust-web-llvm lld-22 (1.96 from
#         bookworm-security; rust-web-llvm, which holds /usr/bin/rust-lld, is only
#         a Recommends of rustc-web).
#   qemu  qemu-system-ppc64 >= 9.1 (QEMU= takes any version). On bookworm it is
#         qemu-system-ppc from bookworm-backports; that source is added, when
#         missing, with the mirror and key of the machine's own bookworm source
#         (scripts/apt-sources.sh).
#   gdb   gdb-multiarch.
#   objdump  llvm-objdump-22 (package llvm-22, which rust-web-llvm pulls in
#         too): the barrier check of make test disassembles the kernel with it.
#   lint  rustfmt and clippy for the host cargo and for the kernel's cargo
#         (Debian: rustfmt-web, rust-web-clippy), for make lint.
#
# apt-get runs with --no-remove: if an install would remove a package, apt
# aborts, nothing changes, and this script says so. Its output goes to
# build/deps-apt.log.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=apt-sources.sh
. "$HERE/apt-sources.sh"

say() { echo "deps: $*" >&2; }
fail() { echo "deps: error: $*" >&2; exit 1; }

RUST_PKGS=(rustc-web cargo-web rust-web-src rust-web-llvm lld-22)
APT_LOG=$REPO/build/deps-apt.log

# ---------------------------------------------------------------- versions
# The Rust the code needs: [workspace.package] rust-version in Cargo.toml.
RUST_NEED=$(sed -n '/^rust-version[[:space:]]*=/{s/^[^"]*"\([0-9.]*\)".*/\1/p;q;}' "$REPO/Cargo.toml")
[ -n "$RUST_NEED" ] || fail "no rust-version in $REPO/Cargo.toml ([workspace.package])."

version_of() {  # "rustc 1.96.0 (...)" or "cargo 1.97.0-nightly (...)" -> 1.96.0
    "$1" --version 2>/dev/null | sed -n '1s/^[a-z-]* \([0-9][0-9.]*\).*/\1/p'
}
version_ge() {  # $1 >= $2, both dotted numbers
    local IFS=. i x y
    local -a a b
    read -r -a a <<<"$1"; read -r -a b <<<"$2"
    for i in 0 1 2; do
        x=${a[i]:-0} y=${b[i]:-0}
        if ((10#$x != 10#$y)); then ((10#$x > 10#$y)); return; fi
    done
}

# ---------------------------------------------------------------- Rust
host_triple() { "$1" -vV 2>/dev/null | sed -n 's/^host: //p'; }

cargo_for() {  # the cargo that belongs to rustc $1
    local dir; dir=$(dirname "$(command -v "$1")")
    if [ -x "$dir/cargo" ]; then echo "$dir/cargo"; else command -v cargo || true; fi
}

# Why rustc $1 (with cargo $2, default the one beside it) cannot build the
# kernel, in one sentence; nothing if it can.
rust_problem() {
    local rustc=$1 cargo=${2:-} path v sysroot
    path=$(command -v "$rustc" 2>/dev/null) || { echo "rustc $rustc was not found"; return; }
    v=$(version_of "$path")
    [ -n "$v" ] || { echo "$path does not run ('$path --version' failed)"; return; }
    if ! version_ge "$v" "$RUST_NEED"; then
        echo "rustc $v at $path is older than the $RUST_NEED this kernel needs (Cargo.toml rust-version)"; return
    fi
    sysroot=$("$path" --print sysroot 2>/dev/null) || true
    if [ ! -f "$sysroot/lib/rustlib/src/rust/library/core/src/lib.rs" ]; then
        echo "rustc $v at $path has no library source for -Zbuild-std ($sysroot/lib/rustlib/src/rust/library; rustup: rustup component add rust-src)"; return
    fi
    [ -n "$cargo" ] || cargo=$(cargo_for "$path")
    if [ -z "$cargo" ] || ! command -v "$cargo" >/dev/null; then
        echo "there is no cargo beside rustc $v at $path"; return
    fi
    v=$(version_of "$cargo")
    if [ -z "$v" ] || ! version_ge "$v" "$RUST_NEED"; then
        echo "cargo ${v:-?} at $(command -v "$cargo") is older than the $RUST_NEED this kernel needs (Cargo.toml rust-version)"; return
    fi
    if ! command -v rust-lld >/dev/null && [ ! -x "$sysroot/lib/rustlib/$(host_triple "$path")/bin/rust-lld" ]; then
        echo "rust-lld, the linker arch/ppc64/powerpc64le-kernel.json names, is neither on PATH nor beside rustc $v at $path (Debian: package rust-web-llvm)"; return
    fi
}

# Prints CROSS_RUSTC=... CROSS_CARGO=... for the first usable Rust; with
# "verbose", says on stderr why each other candidate was passed over.
find_rust() {
    local verbose=${1:-} why r seen=" "
    if [ -n "${RUSTC:-}" ]; then
        why=$(rust_problem "$RUSTC" "${CARGO:-}")
        [ -z "$why" ] || return 1
        printf 'CROSS_RUSTC=%q CROSS_CARGO=%q\n' "$(command -v "$RUSTC")" "$(command -v "${CARGO:-$(cargo_for "$RUSTC")}")"
        return 0
    fi
    for r in "$(command -v rustc || true)" /usr/bin/rustc; do
        if [ -z "$r" ] || [ ! -x "$r" ]; then continue; fi
        case "$seen" in *" $r "*) continue ;; esac
        seen="$seen$r "
        why=$(rust_problem "$r")
        if [ -z "$why" ]; then
            printf 'CROSS_RUSTC=%q CROSS_CARGO=%q\n' "$r" "$(cargo_for "$r")"
            return 0
        fi
        [ -z "$verbose" ] || say "not using $r: $why."
    done
    return 1
}

host_cargo() { echo "${HOST_CARGO:-$(command -v cargo || echo /usr/bin/cargo)}"; }

# Why the host cargo cannot build the host crates, in one sentence; nothing if it can.
host_cargo_problem() {
    local c v; c=$(host_cargo)
    if ! command -v "$c" >/dev/null; then
        if [ -n "${HOST_CARGO:-}" ]; then echo "the host cargo HOST_CARGO=$c was not found"
        else echo "there is no host cargo (no cargo on PATH and no /usr/bin/cargo)"; fi
        return
    fi
    v=$(version_of "$c")
    if [ -z "$v" ] || ! version_ge "$v" "$RUST_NEED"; then
        echo "the host cargo $(command -v "$c") is cargo ${v:-?}, older than the $RUST_NEED the crates need (Cargo.toml rust-version): update it (rustup update) or run make HOST_CARGO=/usr/bin/cargo"
    fi
}

ensure_rust() {
    if ! find_rust >/dev/null; then
        [ -z "${RUSTC:-}" ] || fail "RUSTC=$RUSTC cannot build the kernel: $(rust_problem "$RUSTC" "${CARGO:-}")."
        find_rust verbose || true
        can_install "Rust $RUST_NEED or newer with its library source and rust-lld" "${RUST_PKGS[*]}"
        if [ "$(codename)" = bookworm ] && ! suite_configured bookworm-security; then
            fail "Debian's Rust >= $RUST_NEED (rustc-web 1.96, rust-web-llvm, lld-22) comes from bookworm-security, which this machine's apt sources lack: add it (e.g. a stanza in /etc/apt/sources.list.d/debian.sources with 'URIs: <your Debian security mirror>', 'Suites: bookworm-security', 'Components: main') and run make again."
        fi
        say "installing Debian's Rust (${RUST_PKGS[*]}; about 240 MB to download, a minute or more)"
        apt_install "Rust $RUST_NEED or newer with its library source and rust-lld" "${RUST_PKGS[@]}"
        if ! find_rust >/dev/null; then
            fail "$(rust_problem /usr/bin/rustc) even after installing ${RUST_PKGS[*]}; rustc-web >= $RUST_NEED comes from bookworm-security: add that suite to your apt sources (beside bookworm) and run make again."
        fi
        say "using $(version_of /usr/bin/rustc) at /usr/bin/rustc"
    fi
    local why; why=$(host_cargo_problem)
    if [ -n "$why" ] && ! command -v "$(host_cargo)" >/dev/null && [ -z "${HOST_CARGO:-}" ]; then
        say "installing cargo-web for the host crates"
        apt_install "the host cargo" cargo-web
        why=$(host_cargo_problem)
    fi
    [ -z "$why" ] || fail "$why."
}

# ---------------------------------------------------------------- lint
# `cargo fmt` and `cargo clippy` run the rustfmt / clippy-driver that sit
# beside that cargo's cargo-fmt / cargo-clippy on PATH: the host cargo's for
# the host crates, the kernel's (its directory first on PATH, see the
# Makefile's lint target) for the kernel on its target.
ensure_lint() {
    local host cross_dir missing=()
    host=$(host_cargo)
    eval "$(find_rust)" || fail "no Rust that can build the kernel (run scripts/deps.sh rust)."
    cross_dir=$(dirname "$CROSS_CARGO")
    "$host" fmt --version >/dev/null 2>&1 || missing+=(rustfmt-web)
    "$host" clippy --version >/dev/null 2>&1 || missing+=(rust-web-clippy)
    if [ ! -x "$cross_dir/cargo-clippy" ] || [ ! -x "$cross_dir/clippy-driver" ]; then
        case " ${missing[*]} " in *" rust-web-clippy "*) ;; *) missing+=(rust-web-clippy) ;; esac
    fi
    [ ${#missing[@]} -gt 0 ] || return 0
    say "installing ${missing[*]} (rustfmt and clippy for make lint)"
    apt_install "rustfmt and clippy" "${missing[@]}"
    "$host" fmt --version >/dev/null 2>&1 || fail "$host fmt does not run even after installing ${missing[*]}."
    "$host" clippy --version >/dev/null 2>&1 || fail "$host clippy does not run even after installing ${missing[*]}."
    [ -x "$cross_dir/cargo-clippy" ] || fail "there is no cargo-clippy beside the kernel's cargo $CROSS_CARGO (Debian: rust-web-clippy)."
}

# ---------------------------------------------------------------- QEMU
# QEMU >= 9.1 fixes a broadcast-tlbie race that looks like a kernel bug in
# cross-CPU tests; Debian 12 ships 7.2, bookworm-backports 10.x.
qemu_version() { "${QEMU:-qemu-system-ppc64}" --version 2>/dev/null | sed -n '1s/.*version \([0-9][0-9.]*\).*/\1/p'; }
qemu_version_ok() { local v; v=$(qemu_version); [ -n "$v" ] && version_ge "$v" 9.1; }

codename() { (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true; }

ensure_qemu() {
    if [ -n "${QEMU:-}" ]; then
        command -v "$QEMU" >/dev/null || fail "QEMU=$QEMU was not found."
        [ -n "$(qemu_version)" ] || fail "QEMU=$QEMU does not run ('$QEMU --version' failed)."
        qemu_version_ok || say "QEMU=$QEMU is QEMU $(qemu_version), older than 9.1: cross-CPU tests may fail through QEMU's broadcast-tlbie race."
        return 0
    fi
    qemu_version_ok && return 0
    local have="" missing="qemu-system-ppc64 (QEMU >= 9.1)"
    if command -v qemu-system-ppc64 >/dev/null; then
        have="QEMU $(qemu_version) at $(command -v qemu-system-ppc64) is too old; "
        missing="QEMU >= 9.1 (qemu-system-ppc64 at $(command -v qemu-system-ppc64) is $(qemu_version))"
    fi
    if [ "$(codename)" = bookworm ]; then
        can_install "$missing" "-t bookworm-backports qemu-system-ppc"
        if ! backports_configured; then
            debian_mirror >/dev/null || fail "$(no_debian_source_hint)"
            local f; f=$(write_backports_source) || fail "could not write /etc/apt/sources.list.d/bookworm-backports.sources."
            say "added bookworm-backports from this machine's Debian bookworm source: $f"
            apt_updated=
        fi
        say "${have}installing qemu-system-ppc from bookworm-backports (QEMU >= 9.1; about 18 MB)"
        apt_install "qemu-system-ppc from bookworm-backports" -t bookworm-backports qemu-system-ppc
    else
        can_install "$missing" qemu-system-ppc
        say "${have}installing qemu-system-ppc"
        apt_install "qemu-system-ppc (QEMU >= 9.1)" qemu-system-ppc
    fi
    command -v qemu-system-ppc64 >/dev/null || fail "qemu-system-ppc64 is still missing after installing qemu-system-ppc."
    qemu_version_ok || fail "qemu-system-ppc64 at $(command -v qemu-system-ppc64) is QEMU $(qemu_version), older than the 9.1 the cross-CPU tests need; install QEMU >= 9.1 (on Debian 12: qemu-system-ppc from bookworm-backports), or set QEMU=/path/to/qemu-system-ppc64 to use another."
}

# ---------------------------------------------------------------- apt
can_install() {  # $1 = what, $2 = the apt-get arguments; fails unless root with apt-get
    if ! command -v apt-get >/dev/null; then
        fail "$1 is missing and this is not a Debian-like system with apt-get; install it and run make again."
    fi
    if [ "$(id -u)" != 0 ]; then
        fail "$1 is missing; run scripts/deps.sh $WHAT as root (it runs apt-get install $2), then make again."
    fi
}

apt_updated=
apt_install() {  # $1 = what (for messages), then apt-get install arguments
    local what=$1; shift
    can_install "$what" "$*"
    mkdir -p "$(dirname "$APT_LOG")"
    if [ -z "$apt_updated" ]; then
        say "apt-get update"
        apt-get update -q >>"$APT_LOG" 2>&1 || say "apt-get update reported errors (see $APT_LOG); trying the install anyway"
        apt_updated=1
    fi
    local out rc=0 removed
    out=$(mktemp)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-remove --no-install-recommends "$@" >"$out" 2>&1 || rc=$?
    cat "$out" >>"$APT_LOG"
    if [ "$rc" != 0 ]; then
        if grep -q 'remove is disabled' "$out"; then
            removed=$(awk '/packages will be REMOVED/ { f = 1; next } f && /^ / { s = $0; sub(/^ +/, " ", s); printf "%s", s; next } f { exit }' "$out")
            rm -f "$out"
            fail "apt-get stopped without changing anything: installing $* would remove${removed:- installed packages}, and this script installs with --no-remove only; remove or replace those yourself (Debian's rustc and cargo, for one, conflict with rustc-web and cargo-web), then run make again."
        fi
        tail -n 15 "$out" >&2; rm -f "$out"
        fail "apt-get install $* failed (its output: $APT_LOG)."
    fi
    rm -f "$out"
}

# ---------------------------------------------------------------- main
WHAT=
for WHAT in "$@"; do
    case "$WHAT" in
        rust) ensure_rust ;;
        qemu) ensure_qemu ;;
        gdb)
            if ! command -v gdb-multiarch >/dev/null; then
                say "installing gdb-multiarch"
                apt_install gdb-multiarch gdb-multiarch
                command -v gdb-multiarch >/dev/null || fail "gdb-multiarch is still missing after installing it."
            fi ;;
        objdump)
            if ! command -v llvm-objdump-22 >/dev/null; then
                say "installing llvm-22 (llvm-objdump-22, for the barrier check)"
                apt_install llvm-objdump-22 llvm-22
                command -v llvm-objdump-22 >/dev/null || fail "llvm-objdump-22 is still missing after installing llvm-22."
            fi ;;
        lint) ensure_lint ;;
        env) find_rust || fail "no Rust that can build the kernel (run scripts/deps.sh rust)." ;;
        *) echo "usage: $0 rust|qemu|gdb|objdump|lint|env ..." >&2; exit 2 ;;
    esac
done
