#!/usr/bin/env bash
# The Linux anchor: boots Debian 12's ppc64le Linux kernel in the same QEMU
# pseries machine as our kernel, with an initramfs whose /init is mmbench
# (mmbench.c beside this file), and collects its timings of the mm
# operations into build/linux-anchor/results.json.  See README.md here.
#
#   bench/linux/run.sh            all configurations (about 1-2 min here)
#   bench/linux/run.sh --quick    one boot, radix, -smp 1, 3 repetitions
#
# Environment knobs:
#   BOOTS=1                 boots per configuration and -smp
#   REPS=20                 repetitions of each measured operation per boot
#   CONFIGS="radix hash hash16m"
#       radix    -M pseries,x-vof=on                  (Linux's default on POWER9)
#       hash     -M pseries,x-vof=on + disable_radix  (64K max page size: no THP)
#       hash16m  -M pseries,x-vof=on,cap-hpt-max-page-size=16M + disable_radix
#                (16M pages allowed, so hash THP exists; it is 16 MiB)
#   SMPS="1 4"              -smp values
#   TIMEOUT=180             seconds per boot
#   QEMU=qemu-system-ppc64  QEMU binary
#   KERNEL_PKG=             e.g. linux-image-6.1.0-50-powerpc64le (default: the
#                           one bookworm's linux-image-powerpc64le depends on)
#   MIRROR=                 Debian mirror (default: the URI of the host's apt
#                           source for bookworm, read by scripts/apt-sources.sh)
#   OUT=build/linux-anchor  cache of downloads, builds, logs and results
#
# Firmware: QEMU's VOF (x-vof=on) boots this vmlinux directly (checked with
# 6.1.0-50: prom_init runs on VOF's client interface), so SLOF is not needed.
#
# Downloads (only): the kernel package and busybox-static for ppc64el, via
# `apt-get download` with a private apt state under $OUT/apt (ppc64el lists of
# bookworm main from the host's Debian mirror), which leaves the host's apt
# and dpkg configuration alone and works without root; and, when root and
# missing, python3 and the cross compiler gcc-powerpc64le-linux-gnu through the
# host's apt (with --no-remove: never removing a package).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR/../.. source=scripts/apt-sources.sh
. "$REPO/scripts/apt-sources.sh"
OUT=${OUT:-$REPO/build/linux-anchor}
QEMU=${QEMU:-qemu-system-ppc64}
BOOTS=${BOOTS:-1}
REPS=${REPS:-20}
CONFIGS=${CONFIGS:-radix hash hash16m}
SMPS=${SMPS:-1 4}
TIMEOUT=${TIMEOUT:-180}
SUITE=bookworm
CC=powerpc64le-linux-gnu-gcc
RESULTS=$OUT/results.json

fail() { echo "run.sh: error: $*" >&2; exit 1; }
note() { echo "run.sh: $*" >&2; }

case "${1:-}" in
    "") ;;
    --quick) BOOTS=1 REPS=3 CONFIGS=radix SMPS=1 RESULTS=$OUT/results-quick.json ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument '$1' (use --quick, or no argument)." ;;
esac
[[ "$BOOTS" =~ ^[1-9][0-9]*$ ]] || fail "BOOTS must be a positive integer, not '$BOOTS'."
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] && [ "$REPS" -le 1000 ] || fail "REPS must be an integer in 1..1000, not '$REPS'."
for c in $CONFIGS; do
    case "$c" in radix|hash|hash16m) ;; *) fail "unknown configuration '$c' in CONFIGS (radix, hash, hash16m)." ;; esac
done
for s in $SMPS; do [[ "$s" =~ ^[1-9][0-9]*$ ]] || fail "SMPS must hold positive integers, not '$s'."; done

# ---------------------------------------------------------------- host tools
command -v "$QEMU" >/dev/null || fail "QEMU binary '$QEMU' not found; install qemu-system-ppc (Debian) or set QEMU=."
QEMU_VER=$("$QEMU" --version 2>/dev/null | head -n1) && [ -n "$QEMU_VER" ] ||
    fail "QEMU binary '$QEMU' does not run ('$QEMU --version' failed)."
command -v dpkg-deb >/dev/null && command -v apt-get >/dev/null ||
    fail "apt-get and dpkg-deb are needed to fetch Debian's packages; run this on Debian or Ubuntu."
command -v timeout >/dev/null || fail "timeout (coreutils) is needed."
apt_updated=
install_pkgs() {  # $1 = what is missing (for messages); then packages. Root: apt-get install.
    local what=$1 log=$OUT/apt-install.log; shift
    [ "$(id -u)" = 0 ] || fail "$what is missing; install it with: sudo apt-get install $*"
    note "installing $what: $* (apt-get output in $log)"
    mkdir -p "$OUT"
    [ -n "$apt_updated" ] || { apt-get update -qq >"$log" 2>&1 || true; apt_updated=1; }
    # --no-remove: apt aborts, changing nothing, rather than remove a package.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-remove --no-install-recommends "$@" >>"$log" 2>&1; then
        tail -n 10 "$log" >&2
        grep -q 'remove is disabled' "$log" &&
            fail "apt-get stopped without changing anything: installing $* would remove packages, which this script never does; resolve that by hand."
        fail "could not install $* with apt-get (see $log)."
    fi
}
command -v python3 >/dev/null || install_pkgs "python3 (it writes the initramfs and the results)" python3
if ! command -v "$CC" >/dev/null || ! echo 'int main(void){return 0;}' |
        "$CC" -static -x c - -o /dev/null 2>/dev/null; then
    install_pkgs "the cross compiler" gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross
fi

mkdir -p "$OUT/dl" "$OUT/logs"

# ---------------------------------------------------------------- downloads
# The Debian mirror of the host's apt: the URI of its bookworm source, and its key.
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(debian_mirror) || fail "MIRROR is not set and $(no_debian_source_hint)"
    KEYRING=$(debian_signed_by || true)
fi
case "${KEYRING:-}" in /*) [ -f "$KEYRING" ] || KEYRING=$DEBIAN_KEYRING ;; *) KEYRING=$DEBIAN_KEYRING ;; esac

APT_DIR=$OUT/apt
apt_private() {  # apt-get/apt-cache with ppc64el lists of $SUITE only
    APT_CONFIG=$APT_DIR/apt.conf "$@"
}
apt_setup() {
    [ -f "$KEYRING" ] || fail "Debian's archive keyring $KEYRING is missing; install debian-archive-keyring."
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
    : > "$APT_DIR/status"
    echo "deb [arch=ppc64el signed-by=$KEYRING] $MIRROR $SUITE main" > "$APT_DIR/sources.list"
    cat > "$APT_DIR/apt.conf" <<EOF
Dir::Etc::Main "/dev/null";
Dir::Etc::Parts "/dev/null";
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State::Lists "$APT_DIR/lists";
Dir::State::status "$APT_DIR/status";
Dir::Cache "$APT_DIR/cache";
APT::Architecture "ppc64el";
APT::Architectures { "ppc64el"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Debug::NoLocking "1";
EOF
    note "fetching the ppc64el package list of $SUITE from $MIRROR"
    apt_private apt-get -qq update >"$APT_DIR/update.log" 2>&1 ||
        fail "apt-get update of the ppc64el lists from $MIRROR failed (see $APT_DIR/update.log)."
}
apt_ready=
download() {  # $1 = package; leaves the .deb in $OUT/dl
    [ -n "$apt_ready" ] || { apt_setup; apt_ready=1; }
    note "downloading $1 (ppc64el)"
    (cd "$OUT/dl" && apt_private apt-get -qq download "$1:ppc64el") >"$OUT/dl/download.log" 2>&1 ||
        fail "could not download package $1 for ppc64el from $MIRROR (see $OUT/dl/download.log)."
}

newest_deb() {  # $1 = glob under $OUT/dl; the highest version, or nothing
    local f; for f in "$OUT"/dl/$1; do if [ -e "$f" ]; then echo "$f"; fi; done | sort -V | tail -n1
}

if [ -n "${KERNEL_PKG:-}" ]; then
    KERNEL_DEB=$(newest_deb "${KERNEL_PKG}_*_ppc64el.deb")
    [ -n "$KERNEL_DEB" ] || { download "$KERNEL_PKG"; KERNEL_DEB=$(newest_deb "${KERNEL_PKG}_*_ppc64el.deb"); }
else
    KERNEL_DEB=$(newest_deb 'linux-image-*-powerpc64le_*_ppc64el.deb')
    if [ -z "$KERNEL_DEB" ]; then
        [ -n "$apt_ready" ] || { apt_setup; apt_ready=1; }
        KERNEL_PKG=$(apt_private apt-cache depends linux-image-powerpc64le 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-[^ ]*-powerpc64le\)$/\1/p' | head -n1)
        [ -n "$KERNEL_PKG" ] || fail "package linux-image-powerpc64le (ppc64el) was not found at $MIRROR in $SUITE."
        download "$KERNEL_PKG"
        KERNEL_DEB=$(newest_deb "${KERNEL_PKG}_*_ppc64el.deb")
    fi
fi
[ -n "$KERNEL_DEB" ] || fail "the kernel package was not found after its download."
KERNEL_PKG=$(dpkg-deb -f "$KERNEL_DEB" Package)
KERNEL_VER=$(dpkg-deb -f "$KERNEL_DEB" Version)

BUSYBOX_DEB=$(newest_deb 'busybox-static_*_ppc64el.deb')
[ -n "$BUSYBOX_DEB" ] || { download busybox-static; BUSYBOX_DEB=$(newest_deb 'busybox-static_*_ppc64el.deb'); }
[ -n "$BUSYBOX_DEB" ] || fail "the busybox-static package was not found after its download."
BUSYBOX_VER=$(dpkg-deb -f "$BUSYBOX_DEB" Version)

# ---------------------------------------------------------------- extract, build
KDIR=$OUT/kernel/$KERNEL_PKG-$KERNEL_VER
VMLINUX=$(ls "$KDIR"/boot/vmlinux-* 2>/dev/null | head -n1 || true)
if [ -z "$VMLINUX" ]; then
    note "extracting vmlinux from $(basename "$KERNEL_DEB")"
    mkdir -p "$KDIR"
    dpkg-deb --fsys-tarfile "$KERNEL_DEB" | tar -x -C "$KDIR" --wildcards './boot/vmlinux-*' './boot/config-*' ||
        fail "could not extract vmlinux from $KERNEL_DEB."
    VMLINUX=$(ls "$KDIR"/boot/vmlinux-* 2>/dev/null | head -n1 || true)
    [ -n "$VMLINUX" ] || fail "$KERNEL_DEB holds no boot/vmlinux-*."
fi

BBDIR=$OUT/busybox-$BUSYBOX_VER
if [ ! -x "$BBDIR/bin/busybox" ]; then
    mkdir -p "$BBDIR"
    dpkg-deb -x "$BUSYBOX_DEB" "$BBDIR" || fail "could not extract $BUSYBOX_DEB."
    [ -x "$BBDIR/bin/busybox" ] || fail "$BUSYBOX_DEB holds no bin/busybox."
fi

CFLAGS="-std=c99 -O2 -static -Wall -Wextra -pthread"
"$CC" $CFLAGS -o "$OUT/mmbench" "$HERE/mmbench.c" 2>"$OUT/mmbench.cc.log" ||
    fail "mmbench.c did not compile (see $OUT/mmbench.cc.log)."
[ -s "$OUT/mmbench.cc.log" ] && { cat "$OUT/mmbench.cc.log" >&2; note "mmbench.c compiled with warnings."; }

# Initramfs: /init = mmbench (so boot-to-init is measured by the first
# instruction of init); busybox in /bin for a debugging shell (append
# rdinit=/bin/sh by hand).  /dev/console is a node in the archive, so init
# has a console before anything is mounted.  Written by Python because the
# host may have no cpio.
ROOT=$OUT/initramfs
rm -rf "$ROOT"
mkdir -p "$ROOT/bin" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/tmp"
cp "$BBDIR/bin/busybox" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
cp "$OUT/mmbench" "$ROOT/init"
python3 - "$ROOT" "$OUT/initramfs.cpio.gz" <<'EOF' || fail "could not write the initramfs."
import gzip, os, stat, sys
root, out = sys.argv[1], sys.argv[2]
def entry(name, mode, body=b"", ino=0, rdev=(0, 0)):
    n = name.encode() + b"\0"
    h = b"070701" + b"".join(b"%08X" % v for v in
        (ino, mode, 0, 0, 1, 0, len(body), 0, 0, rdev[0], rdev[1], len(n), 0))
    b = h + n
    b += b"\0" * (-len(b) % 4)
    return b + body + b"\0" * (-len(body) % 4)
paths = []
for d, dirs, files in os.walk(root):
    dirs.sort()
    paths += [os.path.join(d, n) for n in sorted(dirs) + sorted(files)]
data = bytearray()
for ino, p in enumerate(paths, 1):
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode):
        body = os.readlink(p).encode()
    elif stat.S_ISREG(st.st_mode):
        body = open(p, "rb").read()
    else:
        body = b""
    data += entry(os.path.relpath(p, root), st.st_mode, body, ino)
data += entry("dev/console", stat.S_IFCHR | 0o600, ino=len(paths) + 1, rdev=(5, 1))
data += entry("TRAILER!!!", 0)
data += b"\0" * (-len(data) % 512)
with gzip.open(out, "wb", compresslevel=6) as f:
    f.write(data)
EOF

# ---------------------------------------------------------------- boots
CC_VER=$("$CC" --version | head -n1)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
note "kernel $KERNEL_PKG $KERNEL_VER, busybox $BUSYBOX_VER, $QEMU_VER"
note "configs: $CONFIGS; smp: $SMPS; boots: $BOOTS; reps: $REPS; timeout ${TIMEOUT}s per boot"

BOOTLIST=$OUT/boots.tsv
: > "$BOOTLIST"
t_all=$(date +%s.%N)
for config in $CONFIGS; do
    machine=pseries,x-vof=on
    append="console=hvc0 quiet panic=-1 mmbench.reps=$REPS"
    case "$config" in
        hash) append="$append disable_radix" ;;
        hash16m) machine="$machine,cap-hpt-max-page-size=16M"; append="$append disable_radix" ;;
    esac
    for smp in $SMPS; do
        for boot in $(seq 1 "$BOOTS"); do
            log=$OUT/logs/$config-smp$smp-boot$boot.log
            t0=$(date +%s.%N)
            rc=0
            timeout -k 5 "$TIMEOUT" "$QEMU" -M "$machine" -cpu POWER9 -m 2G -smp "$smp" \
                -nographic -vga none -no-reboot \
                -kernel "$VMLINUX" -initrd "$OUT/initramfs.cpio.gz" -append "$append" \
                </dev/null >"$log" 2>&1 || rc=$?
            t1=$(date +%s.%N)
            wall=$(python3 -c "print(round($t1 - $t0, 2))")
            [ "$rc" = 124 ] || [ "$rc" = 137 ] &&
                fail "boot $config -smp $smp #$boot timed out after ${TIMEOUT}s (console log: $log)."
            [ "$rc" = 0 ] || fail "QEMU failed (exit $rc) on $config -smp $smp #$boot (console log: $log)."
            grep -q '^LINUXBENCH {"name":"done"' <(tr -d '\r' <"$log") ||
                fail "boot $config -smp $smp #$boot ended without results (console log: $log)."
            note "$config -smp $smp boot $boot: ${wall}s"
            printf '%s\t%s\t%s\t%s\t%s\n' "$config" "$smp" "$boot" "$wall" "$log" >>"$BOOTLIST"
        done
    done
done
t_all=$(python3 -c "print(round($(date +%s.%N) - $t_all, 1))")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- results
export KERNEL_PKG KERNEL_VER KERNEL_DEB BUSYBOX_VER QEMU_VER CC_VER BOOTS REPS CONFIGS SMPS \
    LOAD_START LOAD_END t_all TIMEOUT
python3 - "$BOOTLIST" "$RESULTS" <<'EOF' || fail "no results could be collected from the console logs."
import json, os, statistics, sys
bootlist, out = sys.argv[1], sys.argv[2]
e = os.environ
def host_cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"
meta = {
    "kernel_pkg": e["KERNEL_PKG"], "kernel_version": e["KERNEL_VER"],
    "kernel_deb": os.path.basename(e["KERNEL_DEB"]), "busybox_version": e["BUSYBOX_VER"],
    "cc": e["CC_VER"], "qemu": e["QEMU_VER"], "host_cpu": host_cpu(), "host_cores": os.cpu_count(),
    "host_loadavg_start": e["LOAD_START"], "host_loadavg_end": e["LOAD_END"],
    "boots": int(e["BOOTS"]), "reps": int(e["REPS"]), "configs": e["CONFIGS"].split(),
    "smps": [int(s) for s in e["SMPS"].split()], "firmware": "vof",
    "qemu_args": "-M pseries,x-vof=on[,cap-hpt-max-page-size=16M] -cpu POWER9 -m 2G -smp N -nographic -vga none -no-reboot",
    "total_wall_s": float(e["t_all"]), "unit": "us (timebase), min/median/max over reps",
}
results, bad = [], 0
for line in open(bootlist):
    config, smp, boot, wall, log = line.rstrip("\n").split("\t")
    base = {"config": config, "smp": int(smp), "boot": int(boot)}
    results.append(dict(base, name="boot_qemu_wall", unit="s", min=float(wall),
                        median=float(wall), max=float(wall), reps=1))
    for raw in open(log, errors="replace"):
        raw = raw.replace("\r", "").strip()
        i = raw.find("LINUXBENCH {")
        if i < 0:
            continue
        try:
            r = json.loads(raw[i + len("LINUXBENCH "):])
        except ValueError:
            bad += 1
            continue
        if r.get("name") == "done":
            continue
        results.append(dict(base, **r))
if not any("median" in r and r["name"] != "boot_qemu_wall" for r in results):
    sys.exit(1)
json.dump({"metadata": meta, "results": results}, open(out, "w"), indent=1)
if bad:
    print(f"run.sh: warning: {bad} LINUXBENCH line(s) garbled on the console were skipped", file=sys.stderr)

# Table of medians (median of the boot medians when BOOTS > 1) per config.
cols = [f"{c}-smp{s}" for s in meta["smps"] for c in meta["configs"]]
cell, names = {}, []
for r in results:
    if r["name"] == "info":
        continue
    if r["name"] not in names:
        names.append(r["name"])
    key = (r["name"], f'{r["config"]}-smp{r["smp"]}')
    cell.setdefault(key, []).append(r)
def fmt(rs):
    if not rs:
        return "-"
    if all("median" in r for r in rs):
        m = statistics.median(r["median"] for r in rs)
        return f"{m:.3g}" if m < 1000 else f"{m:.0f}"
    return rs[0].get("status", "?")
w = max(len(n) for n in names)
print(f"{'median (us)':<{w}}  " + "  ".join(f"{c:>14}" for c in cols))
for n in names:
    print(f"{n:<{w}}  " + "  ".join(f"{fmt(cell.get((n, c), [])):>14}" for c in cols))
print(f"run.sh: {len(results)} results of {len(open(bootlist).readlines())} boot(s) in {out} "
      f"({meta['total_wall_s']} s of boots)", file=sys.stderr)
EOF
