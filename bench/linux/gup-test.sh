#!/usr/bin/env bash
# Linux's own GUP benchmark as an anchor: builds Linux 6.1 (Debian's
# linux-source-6.1, the version of the anchor's Debian kernel) for a ppc64le
# pseries guest with CONFIG_GUP_TEST, boots it in the same QEMU machine as
# run.sh with /init = gupbench (gupbench.c beside this file), which times
# the gup_test ioctls PIN_FAST_BENCHMARK and GUP_FAST_BENCHMARK, and writes
# build/linux-anchor/gup-test.json.  See README.md here.
#
#   bench/linux/gup-test.sh             build (once) and boot every configuration
#   bench/linux/gup-test.sh --build     build (once) only
#   bench/linux/gup-test.sh --if-built  boot if the kernel is built; otherwise say
#                                       how to build it and exit with status 10
#   bench/linux/gup-test.sh --quick     build (once), one boot: radix, -smp 1, 3 reps
#
# Environment knobs (and those of run.sh: QEMU, MIRROR, KERNEL_PKG, OUT, TIMEOUT):
#   BOOTS=1               boots per configuration and -smp
#   REPS=10               timed ioctls per measurement per boot (after one warm-up)
#   CONFIGS="radix hash16m"   run.sh's configurations (hash: small pages only)
#   SMPS="1 4"            -smp values
#   MIB=512               size of each pinned region (MiB): 8192 64K pages
#   LINUX_SRC_VER=        linux-source-6.1 version (default: the version of the
#                         Debian kernel run.sh boots, so both are the same source)
#   GUP_DIR=build/linux-gup   sources, build trees and the cached kernels
#   JOBS=                 make -j (default: the host's CPUs; the build runs under nice -n 19)
#
# The kernel: `make allnoconfig` with gup-test.config (beside this file) as
# KCONFIG_ALLCONFIG, then `make vmlinux` with CROSS_COMPILE=powerpc64le-linux-gnu-.
# It is cached in $GUP_DIR/<source version>-<config hash>/ (vmlinux, config,
# build.json with the build's time, config-diff.txt against Debian's config);
# a second run builds nothing.  Root installs what the build lacks (flex,
# bison, bc, xz-utils, make) through the host's apt; the source comes like
# run.sh's packages, through its private apt state under build/linux-anchor/apt.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PROG=gup-test.sh
OUT=${OUT:-$REPO/build/linux-anchor}
GUP_DIR=${GUP_DIR:-$REPO/build/linux-gup}
QEMU=${QEMU:-qemu-system-ppc64}
BOOTS=${BOOTS:-1}
REPS=${REPS:-10}
CONFIGS=${CONFIGS:-radix hash16m}
SMPS=${SMPS:-1 4}
TIMEOUT=${TIMEOUT:-300}
MIB=${MIB:-512}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
FRAGMENT=$HERE/gup-test.config
RESULTS=$OUT/gup-test.json
SRC_PKG=linux-source-6.1
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

mode=all
case "${1:-}" in
    "") ;;
    --build) mode=build ;;
    --if-built) mode=if-built ;;
    --quick) BOOTS=1 REPS=3 CONFIGS=radix SMPS=1 RESULTS=$OUT/gup-test-quick.json ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument '$1' (use --build, --if-built, --quick, or no argument)." ;;
esac
check_knobs
if ! [[ "$MIB" =~ ^[1-9][0-9]*$ ]] || [ "$MIB" -gt 512 ]; then fail "MIB must be an integer in 1..512, not '$MIB'."; fi
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || fail "JOBS must be a positive integer, not '$JOBS'."
[ -f "$FRAGMENT" ] || fail "$FRAGMENT is missing."

check_host_tools
anchor_kernel_deb
SRC_VER=${LINUX_SRC_VER:-$KERNEL_VER}
# The cache key: the fragment's settings, not its comments or their order.
CONFIG_HASH=$(grep -E '^(CONFIG_|# CONFIG_.* is not set)' "$FRAGMENT" | LC_ALL=C sort | sha256sum | cut -c1-12)
KEY=$SRC_VER-$CONFIG_HASH
BUILT=$GUP_DIR/$KEY

# ---------------------------------------------------------------- the kernel
build_kernel() {
    local deb src obj t0 seconds tool missing=()
    for tool in flex:flex bison:bison bc:bc xz:xz-utils make:make; do
        command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
    done
    [ ${#missing[@]} = 0 ] || install_pkgs "what building Linux needs" "${missing[@]}"

    deb=$(newest_deb "${SRC_PKG}_${SRC_VER}_all.deb")
    if [ -z "$deb" ]; then
        download "$SRC_PKG=$SRC_VER" all ||
            fail "could not download $SRC_PKG $SRC_VER from $MIRROR (see $OUT/dl/download.log); versions there: $(apt_private apt-cache madison "$SRC_PKG" 2>/dev/null | cut -d'|' -f2 | tr -d ' ' | tr '\n' ' ')(set LINUX_SRC_VER=)."
        deb=$(newest_deb "${SRC_PKG}_${SRC_VER}_all.deb")
        [ -n "$deb" ] || fail "$SRC_PKG $SRC_VER was not found after its download."
    fi

    src=$GUP_DIR/src-$SRC_VER
    if [ ! -f "$src/.unpacked" ]; then
        note "unpacking $(basename "$deb") into $src"
        rm -rf "$src"
        mkdir -p "$src"
        dpkg-deb --fsys-tarfile "$deb" | tar -x -O "./usr/src/$SRC_PKG.tar.xz" | tar -xJ -C "$src" ||
            fail "could not unpack $deb."
        [ -f "$src/$SRC_PKG/Makefile" ] || fail "$deb holds no $SRC_PKG source tree."
        touch "$src/.unpacked"
    fi
    src=$src/$SRC_PKG

    obj=$BUILT/obj
    mkdir -p "$obj"
    local kmake=(make -C "$src" O="$obj" ARCH=powerpc CROSS_COMPILE=powerpc64le-linux-gnu-)
    "${kmake[@]}" -s KCONFIG_ALLCONFIG="$FRAGMENT" allnoconfig >"$BUILT/config.log" 2>&1 ||
        fail "make allnoconfig failed (see $BUILT/config.log)."
    check_config "$obj/.config"
    note "building Linux $SRC_VER vmlinux (gup_test config $CONFIG_HASH) with -j$JOBS under nice -n 19; log: $BUILT/build.log"
    t0=$(date +%s)
    nice -n 19 "${kmake[@]}" -j"$JOBS" vmlinux >"$BUILT/build.log" 2>&1 || {
        tail -n 20 "$BUILT/build.log" >&2
        fail "the kernel build failed (see $BUILT/build.log)."
    }
    seconds=$(($(date +%s) - t0))
    cp "$obj/.config" "$BUILT/config"
    config_diff "$BUILT/config" >"$BUILT/config-diff.txt"
    SRC_VER=$SRC_VER CONFIG_HASH=$CONFIG_HASH seconds=$seconds JOBS=$JOBS CC_VER=$CC_VER \
        LOAD=$(cut -d' ' -f1-3 /proc/loadavg) python3 - "$BUILT/build.json" <<'EOF'
import json, os, sys, time
e = os.environ
json.dump({"source": "linux-source-6.1 " + e["SRC_VER"], "config_sha256_12": e["CONFIG_HASH"],
           "build_seconds": int(e["seconds"]), "jobs": int(e["JOBS"]), "nice": 19, "cc": e["CC_VER"],
           "host_cores": os.cpu_count(), "host_loadavg_end": e["LOAD"],
           "date": time.strftime("%Y-%m-%d", time.gmtime())}, open(sys.argv[1], "w"), indent=1)
EOF
    # vmlinux last: its presence is the cache's mark of a finished build.
    cp "$obj/vmlinux" "$BUILT/vmlinux.tmp" && mv "$BUILT/vmlinux.tmp" "$BUILT/vmlinux"
    note "built $BUILT/vmlinux in $((seconds / 60)) min $((seconds % 60)) s ($seconds s, -j$JOBS, nice 19)"
}

# Every CONFIG_X=v and "# CONFIG_X is not set" of the fragment must hold in $1:
# a line that Kconfig dropped (an unmet dependency) fails the build here.
check_config() {
    python3 - "$FRAGMENT" "$1" <<'EOF' || fail "the kernel config does not hold what $FRAGMENT asks (above)."
import re, sys
def read(path):
    values = {}
    for line in open(path):
        line = line.strip()
        m = re.match(r"(CONFIG_\w+)=(.*)$", line) or re.match(r"# (CONFIG_\w+) is not set$", line)
        if m:
            values[m[1]] = m[2] if m.lastindex == 2 else None
    return values
want, have = read(sys.argv[1]), read(sys.argv[2])
bad = [f"{k}: asked {v or 'n'}, got {have.get(k) or 'n'}" for k, v in want.items() if have.get(k) != v]
for b in bad:
    print("gup-test.sh:   " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

# Our config against Debian's: the options that differ among those of the
# core kernel, mm, the powerpc architecture, the scheduler and time (drivers,
# file systems, networking and security modules are left out: counted only).
config_diff() {  # $1 = our .config
    anchor_kernel_extract
    [ -n "${DEBIAN_CONFIG:-}" ] || { echo "(no config in $KERNEL_DEB to compare with)"; return 0; }
    python3 - "$DEBIAN_CONFIG" "$1" <<'EOF'
import re, sys
def read(path):
    values = {}
    for line in open(path):
        m = re.match(r"(CONFIG_\w+)=(.*)$", line.strip())
        if m:
            values[m[1]] = m[2]
    return values
debian, ours = read(sys.argv[1]), read(sys.argv[2])
core = re.compile(r"CONFIG_(PPC|POWER|HAVE_|ARCH_|MMU|TRANSPARENT|THP|HUGETLB|SPARSEMEM|NUMA|NODES|NR_CPUS|SMP|"
                  r"PREEMPT|HZ|NO_HZ|TICK|HIGH_RES|RCU|SCHED|VIRT_CPU|CONTEXT_TRACKING|MEMCG|CGROUP|SLUB|SLAB|"
                  r"DEBUG_|KASAN|KFENCE|PAGE_|INIT_|HARDENED|STACKPROTECTOR|RANDOMIZE|JUMP_LABEL|STRICT_|FTRACE|"
                  r"FUNCTION_|DYNAMIC_FTRACE|KPROBES|PERF_EVENTS|COMPACTION|MIGRATION|KSM|SWAP|ZSWAP|USERFAULTFD|"
                  r"MMU_NOTIFIER|MEMORY_|ZONE_|CMA|SPLIT_PTLOCK|GUP|VM_|CC_OPTIMIZE|RELOCATABLE|ALTIVEC|VSX|"
                  r"HOTPLUG_CPU|KVM_GUEST|PGTABLE|LOCKDEP|PROVE|MODULES|SECCOMP|AUDIT|SECURITY|BPF)")
print(f"# Linux config differences: Debian's {sys.argv[1].rsplit('/', 1)[-1]} vs the gup_test kernel")
print("# option: Debian -> ours ('n' = not set), core options only\n")
keys = sorted(set(debian) | set(ours))
other = 0
for k in keys:
    d, o = debian.get(k, "n"), ours.get(k, "n")
    if d == o:
        continue
    if core.match(k):
        print(f"{k}: {d} -> {o}")
    else:
        other += 1
print(f"\n# and {other} other options (drivers, file systems, networking, ...) that differ")
EOF
}

if [ ! -f "$BUILT/vmlinux" ]; then
    if [ "$mode" = if-built ]; then
        note "Linux's gup_test anchor is not built; 'make bench LINUX_GUP_TEST=1' (or bench/linux/gup-test.sh) builds it (about 3 min of 2 cores, once)."
        exit 10
    fi
    build_kernel
else
    note "Linux $SRC_VER with gup_test is built: $BUILT/vmlinux (config $CONFIG_HASH)"
fi
[ "$mode" != build ] || exit 0
BUILD_SECONDS=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('build_seconds', -1))" "$BUILT/build.json" 2>/dev/null || echo -1)

# ---------------------------------------------------------------- boots
busybox_dir
compile_init "$HERE/gupbench.c" "$OUT/gupbench"
write_initramfs "$OUT/gupbench" "$OUT/gup-initramfs.cpio.gz"
note "Linux $SRC_VER (gup_test), busybox $BUSYBOX_VER, $QEMU_VER"
note "configs: $CONFIGS; smp: $SMPS; boots: $BOOTS; reps: $REPS; regions of $MIB MiB; timeout ${TIMEOUT}s per boot"
BOOTLIST=$OUT/gup-boots.tsv LOG_PREFIX=gup-
boot_all "$BUILT/vmlinux" "$OUT/gup-initramfs.cpio.gz" "gupbench.reps=$REPS gupbench.mib=$MIB" "done"

META_JSON=$(SRC_VER=$SRC_VER KEY=$KEY BUILD_SECONDS=$BUILD_SECONDS MIB=$MIB KERNEL_VER=$KERNEL_VER python3 -c '
import json, os
e = os.environ
print(json.dumps({"kernel_pkg": "linux-source-6.1 (built: bench/linux/gup-test.config)",
                  "kernel_version": e["SRC_VER"], "kernel_build": e["KEY"],
                  "build_seconds": int(e["BUILD_SECONDS"]), "anchor_kernel_version": e["KERNEL_VER"],
                  "region_mib": int(e["MIB"]),
                  "unit": "us per page (gup_test get/put_delta_usec, and timebase around the ioctl), min/median/max over reps"}))')
TABLE_UNIT="us per page"
collect_results "$RESULTS"
