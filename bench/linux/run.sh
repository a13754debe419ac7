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
PROG=run.sh
OUT=${OUT:-$REPO/build/linux-anchor}
QEMU=${QEMU:-qemu-system-ppc64}
BOOTS=${BOOTS:-1}
REPS=${REPS:-20}
CONFIGS=${CONFIGS:-radix hash hash16m}
SMPS=${SMPS:-1 4}
TIMEOUT=${TIMEOUT:-180}
RESULTS=$OUT/results.json
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

case "${1:-}" in
    "") ;;
    --quick) BOOTS=1 REPS=3 CONFIGS=radix SMPS=1 RESULTS=$OUT/results-quick.json ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument '$1' (use --quick, or no argument)." ;;
esac
check_knobs
check_host_tools

# ---------------------------------------------------------------- downloads, build
anchor_kernel_deb
anchor_kernel_extract
busybox_dir
compile_init "$HERE/mmbench.c" "$OUT/mmbench"
write_initramfs "$OUT/mmbench" "$OUT/initramfs.cpio.gz"

# ---------------------------------------------------------------- boots, results
note "kernel $KERNEL_PKG $KERNEL_VER, busybox $BUSYBOX_VER, $QEMU_VER"
note "configs: $CONFIGS; smp: $SMPS; boots: $BOOTS; reps: $REPS; timeout ${TIMEOUT}s per boot"
BOOTLIST=$OUT/boots.tsv
boot_all "$VMLINUX" "$OUT/initramfs.cpio.gz" "mmbench.reps=$REPS" "done"
META_JSON=$(python3 -c 'import json, sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
    kernel_pkg "$KERNEL_PKG" kernel_version "$KERNEL_VER" kernel_deb "$(basename "$KERNEL_DEB")")
collect_results "$RESULTS"
