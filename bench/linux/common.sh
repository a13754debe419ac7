# shellcheck shell=bash
# What the Linux anchor's scripts share (run.sh, gup-test.sh beside this file):
# host tools, Debian's ppc64el packages through a private apt state, the
# initramfs, the QEMU boots and the collection of their LINUXBENCH lines.
# Sourced, after the caller has set:
#
#   REPO     the repository's root
#   PROG     the script's name, for messages
#   OUT      build/linux-anchor: downloads (dl/), apt state (apt/), logs, results
#   QEMU, BOOTS, REPS, CONFIGS, SMPS, TIMEOUT   as run.sh documents them
#
# Functions:
#   fail MSG / note MSG
#   check_knobs                BOOTS, REPS, CONFIGS, SMPS are well-formed
#   check_host_tools           QEMU, dpkg-deb, apt-get, timeout, python3, the cross compiler
#   install_pkgs WHAT PKG...   apt-get install through the host's apt (root only)
#   download PKG[=VER] [ARCH]  apt-get download into $OUT/dl (private ppc64el apt state)
#   newest_deb GLOB            the highest version of $OUT/dl/GLOB, or nothing
#   anchor_kernel_deb          sets KERNEL_DEB, KERNEL_PKG, KERNEL_VER (Debian's kernel)
#   anchor_kernel_extract      sets VMLINUX, DEBIAN_CONFIG (extracted from KERNEL_DEB)
#   busybox_dir                sets BBDIR, BUSYBOX_VER (busybox-static, extracted)
#   compile_init SRC BIN       the static init program, with $CC
#   write_initramfs INIT CPIO  initramfs: /init = INIT, busybox in /bin
#   boot_all KERNEL CPIO APPEND DONE_NAME    every config x smp x boot; $BOOTLIST
#   collect_results RESULTS    $BOOTLIST's logs -> RESULTS (JSON) + a table;
#                              $META_JSON (a JSON object) goes into its metadata

# shellcheck source-path=SCRIPTDIR/../.. source=scripts/apt-sources.sh disable=SC2153 # REPO: the caller's
. "$REPO/scripts/apt-sources.sh"

SUITE=bookworm
CC=powerpc64le-linux-gnu-gcc

fail() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

check_knobs() {
    local c s
    [[ "$BOOTS" =~ ^[1-9][0-9]*$ ]] || fail "BOOTS must be a positive integer, not '$BOOTS'."
    if ! [[ "$REPS" =~ ^[1-9][0-9]*$ ]] || [ "$REPS" -gt 1000 ]; then
        fail "REPS must be an integer in 1..1000, not '$REPS'."
    fi
    for c in $CONFIGS; do
        case "$c" in radix|hash|hash16m) ;; *) fail "unknown configuration '$c' in CONFIGS (radix, hash, hash16m)." ;; esac
    done
    for s in $SMPS; do [[ "$s" =~ ^[1-9][0-9]*$ ]] || fail "SMPS must hold positive integers, not '$s'."; done
}

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

check_host_tools() {
    command -v "$QEMU" >/dev/null || fail "QEMU binary '$QEMU' not found; install qemu-system-ppc (Debian) or set QEMU=."
    QEMU_VER=$("$QEMU" --version 2>/dev/null | head -n1 || true)
    [ -n "$QEMU_VER" ] || fail "QEMU binary '$QEMU' does not run ('$QEMU --version' failed)."
    if ! command -v dpkg-deb >/dev/null || ! command -v apt-get >/dev/null; then
        fail "apt-get and dpkg-deb are needed to fetch Debian's packages; run this on Debian or Ubuntu."
    fi
    command -v timeout >/dev/null || fail "timeout (coreutils) is needed."
    command -v python3 >/dev/null || install_pkgs "python3 (it writes the initramfs and the results)" python3
    if ! command -v "$CC" >/dev/null || ! echo 'int main(void){return 0;}' |
            "$CC" -static -x c - -o /dev/null 2>/dev/null; then
        install_pkgs "the cross compiler" gcc-powerpc64le-linux-gnu libc6-dev-ppc64el-cross
    fi
    CC_VER=$("$CC" --version | head -n1)
    mkdir -p "$OUT/dl" "$OUT/logs"
}

# ---------------------------------------------------------------- Debian packages
# The Debian mirror of the host's apt: the URI of its bookworm source, and its key.
apt_mirror() {
    if [ -z "${MIRROR:-}" ]; then
        MIRROR=$(debian_mirror) || fail "MIRROR is not set and $(no_debian_source_hint)"
        KEYRING=$(debian_signed_by || true)
    fi
    case "${KEYRING:-}" in /*) [ -f "$KEYRING" ] || KEYRING=$DEBIAN_KEYRING ;; *) KEYRING=$DEBIAN_KEYRING ;; esac
}

apt_private() {  # apt-get/apt-cache with ppc64el lists of $SUITE only
    APT_CONFIG=$OUT/apt/apt.conf "$@"
}
apt_ready=
apt_setup() {
    [ -z "$apt_ready" ] || return 0
    apt_mirror
    local dir=$OUT/apt
    [ -f "$KEYRING" ] || fail "Debian's archive keyring $KEYRING is missing; install debian-archive-keyring."
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    : > "$dir/status"
    echo "deb [arch=ppc64el signed-by=$KEYRING] $MIRROR $SUITE main" > "$dir/sources.list"
    cat > "$dir/apt.conf" <<EOF
Dir::Etc::Main "/dev/null";
Dir::Etc::Parts "/dev/null";
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State::Lists "$dir/lists";
Dir::State::status "$dir/status";
Dir::Cache "$dir/cache";
APT::Architecture "ppc64el";
APT::Architectures { "ppc64el"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Debug::NoLocking "1";
EOF
    note "fetching the ppc64el package list of $SUITE from $MIRROR"
    apt_private apt-get -qq update >"$dir/update.log" 2>&1 ||
        fail "apt-get update of the ppc64el lists from $MIRROR failed (see $dir/update.log)."
    apt_ready=1
}

download() {  # $1 = package[=version], $2 = architecture (ppc64el); leaves the .deb in $OUT/dl
    apt_setup
    note "downloading $1 (${2:-ppc64el})"
    (cd "$OUT/dl" && apt_private apt-get -qq download "${1%%=*}:${2:-ppc64el}${1#"${1%%=*}"}") \
        >"$OUT/dl/download.log" 2>&1
}

newest_deb() {  # $1 = glob under $OUT/dl; the highest version, or nothing
    local f; for f in "$OUT"/dl/$1; do if [ -e "$f" ]; then echo "$f"; fi; done | sort -V | tail -n1
}

# Debian's kernel: $KERNEL_PKG if set, else whatever bookworm's
# linux-image-powerpc64le depends on; the cached .deb once there is one.
anchor_kernel_deb() {
    if [ -n "${KERNEL_PKG:-}" ]; then
        KERNEL_DEB=$(newest_deb "${KERNEL_PKG}_*_ppc64el.deb")
        if [ -z "$KERNEL_DEB" ]; then
            download "$KERNEL_PKG" ||
                fail "could not download package $KERNEL_PKG for ppc64el from $MIRROR (see $OUT/dl/download.log)."
            KERNEL_DEB=$(newest_deb "${KERNEL_PKG}_*_ppc64el.deb")
        fi
    else
        KERNEL_DEB=$(newest_deb 'linux-image-*-powerpc64le_*_ppc64el.deb')
        if [ -z "$KERNEL_DEB" ]; then
            apt_setup
            KERNEL_PKG=$(apt_private apt-cache depends linux-image-powerpc64le 2>/dev/null |
                sed -n 's/^ *Depends: \(linux-image-[^ ]*-powerpc64le\)$/\1/p' | head -n1)
            [ -n "$KERNEL_PKG" ] || fail "package linux-image-powerpc64le (ppc64el) was not found at $MIRROR in $SUITE."
            download "$KERNEL_PKG" ||
                fail "could not download package $KERNEL_PKG for ppc64el from $MIRROR (see $OUT/dl/download.log)."
            KERNEL_DEB=$(newest_deb "${KERNEL_PKG}_*_ppc64el.deb")
        fi
    fi
    [ -n "$KERNEL_DEB" ] || fail "the kernel package was not found after its download."
    KERNEL_PKG=$(dpkg-deb -f "$KERNEL_DEB" Package)
    KERNEL_VER=$(dpkg-deb -f "$KERNEL_DEB" Version)
}

first_file() {  # the first of its arguments that exists (a glob's first match), or nothing
    local f; for f in "$@"; do if [ -e "$f" ]; then echo "$f"; return 0; fi; done
}

# vmlinux and config of Debian's kernel, extracted once: sets VMLINUX, DEBIAN_CONFIG.
anchor_kernel_extract() {
    local kdir=$OUT/kernel/$KERNEL_PKG-$KERNEL_VER
    VMLINUX=$(first_file "$kdir"/boot/vmlinux-*)
    if [ -z "$VMLINUX" ]; then
        note "extracting vmlinux from $(basename "$KERNEL_DEB")"
        mkdir -p "$kdir"
        dpkg-deb --fsys-tarfile "$KERNEL_DEB" | tar -x -C "$kdir" --wildcards './boot/vmlinux-*' './boot/config-*' ||
            fail "could not extract vmlinux from $KERNEL_DEB."
        VMLINUX=$(first_file "$kdir"/boot/vmlinux-*)
        [ -n "$VMLINUX" ] || fail "$KERNEL_DEB holds no boot/vmlinux-*."
    fi
    # shellcheck disable=SC2034 # read by the caller
    DEBIAN_CONFIG=$(first_file "$kdir"/boot/config-*)
}

busybox_dir() {
    local deb
    deb=$(newest_deb 'busybox-static_*_ppc64el.deb')
    if [ -z "$deb" ]; then
        download busybox-static ||
            fail "could not download package busybox-static for ppc64el from $MIRROR (see $OUT/dl/download.log)."
        deb=$(newest_deb 'busybox-static_*_ppc64el.deb')
    fi
    [ -n "$deb" ] || fail "the busybox-static package was not found after its download."
    BUSYBOX_VER=$(dpkg-deb -f "$deb" Version)
    BBDIR=$OUT/busybox-$BUSYBOX_VER
    if [ ! -x "$BBDIR/bin/busybox" ]; then
        mkdir -p "$BBDIR"
        dpkg-deb -x "$deb" "$BBDIR" || fail "could not extract $deb."
        [ -x "$BBDIR/bin/busybox" ] || fail "$deb holds no bin/busybox."
    fi
}

compile_init() {  # $1 = C source, $2 = binary
    local name log
    name=$(basename "$1"); log=$2.cc.log
    "$CC" -std=c99 -O2 -static -Wall -Wextra -pthread -o "$2" "$1" 2>"$log" ||
        fail "$name did not compile (see $log)."
    [ ! -s "$log" ] || { cat "$log" >&2; note "$name compiled with warnings."; }
}

# Initramfs: /init = $1 (so boot-to-init is measured by the first instruction
# of init); busybox in /bin for a debugging shell (append rdinit=/bin/sh by
# hand).  /dev/console is a node in the archive, so init has a console before
# anything is mounted.  Written by Python because the host may have no cpio.
write_initramfs() {  # $1 = init binary, $2 = output .cpio.gz
    local root=$OUT/initramfs
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
    cp "$BBDIR/bin/busybox" "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    cp "$1" "$root/init"
    python3 - "$root" "$2" <<'EOF' || fail "could not write the initramfs."
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
}

# ---------------------------------------------------------------- boots
# Every configuration x -smp x boot, one at a time.  $3: the kernel command
# line's own part (console, quiet and the MMU's options are added); $4: the
# name of the LINUXBENCH line a complete run ends with ("done").  Each boot
# is a line of $BOOTLIST (config, smp, boot, wall s, log); $LOG_PREFIX names
# the logs.
boot_all() {  # $1 = kernel, $2 = initramfs, $3 = command line, $4 = last result's name
    local config smp boot machine append log t0 t1 wall rc
    BOOTLIST=${BOOTLIST:-$OUT/boots.tsv}
    : > "$BOOTLIST"
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    t_all=$(date +%s.%N)
    for config in $CONFIGS; do
        machine=pseries,x-vof=on
        append="console=hvc0 quiet panic=-1 $3"
        case "$config" in
            hash) append="$append disable_radix" ;;
            hash16m) machine="$machine,cap-hpt-max-page-size=16M"; append="$append disable_radix" ;;
        esac
        for smp in $SMPS; do
            for boot in $(seq 1 "$BOOTS"); do
                log=$OUT/logs/${LOG_PREFIX:-}$config-smp$smp-boot$boot.log
                t0=$(date +%s.%N)
                rc=0
                timeout -k 5 "$TIMEOUT" "$QEMU" -M "$machine" -cpu POWER9 -m 2G -smp "$smp" \
                    -nographic -vga none -no-reboot \
                    -kernel "$1" -initrd "$2" -append "$append" \
                    </dev/null >"$log" 2>&1 || rc=$?
                t1=$(date +%s.%N)
                wall=$(python3 -c "print(round($t1 - $t0, 2))")
                [ "$rc" = 124 ] || [ "$rc" = 137 ] &&
                    fail "boot $config -smp $smp #$boot timed out after ${TIMEOUT}s (console log: $log)."
                [ "$rc" = 0 ] || fail "QEMU failed (exit $rc) on $config -smp $smp #$boot (console log: $log)."
                grep -q "^LINUXBENCH {\"name\":\"$4\"" <(tr -d '\r' <"$log") ||
                    fail "boot $config -smp $smp #$boot ended without results (console log: $log)."
                note "$config -smp $smp boot $boot: ${wall}s"
                printf '%s\t%s\t%s\t%s\t%s\n' "$config" "$smp" "$boot" "$wall" "$log" >>"$BOOTLIST"
            done
        done
    done
    t_all=$(python3 -c "print(round($(date +%s.%N) - $t_all, 1))")
    LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
}

# ---------------------------------------------------------------- results
collect_results() {  # $1 = results file
    export PROG QEMU_VER TABLE_UNIT=${TABLE_UNIT:-us} CC_VER BUSYBOX_VER BOOTS REPS CONFIGS SMPS LOAD_START LOAD_END t_all TIMEOUT
    export META_JSON=${META_JSON:-"{}"}
    python3 - "$BOOTLIST" "$1" <<'EOF' || fail "no results could be collected from the console logs."
import json, os, statistics, sys
bootlist, out = sys.argv[1], sys.argv[2]
e = os.environ
prog = e["PROG"]
def host_cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"
meta = json.loads(e["META_JSON"])
meta.update({
    "busybox_version": e["BUSYBOX_VER"],
    "cc": e["CC_VER"], "qemu": e["QEMU_VER"], "host_cpu": host_cpu(), "host_cores": os.cpu_count(),
    "host_loadavg_start": e["LOAD_START"], "host_loadavg_end": e["LOAD_END"],
    "boots": int(e["BOOTS"]), "reps": int(e["REPS"]), "configs": e["CONFIGS"].split(),
    "smps": [int(s) for s in e["SMPS"].split()], "firmware": "vof",
    "qemu_args": "-M pseries,x-vof=on[,cap-hpt-max-page-size=16M] -cpu POWER9 -m 2G -smp N -nographic -vga none -no-reboot",
    "total_wall_s": float(e["t_all"]),
})
meta.setdefault("unit", "us (timebase), min/median/max over reps")
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
    print(f"{prog}: warning: {bad} LINUXBENCH line(s) garbled on the console were skipped", file=sys.stderr)

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
print(f"{'median (' + e.get('TABLE_UNIT', 'us') + ')':<{w}}  " + "  ".join(f"{c:>14}" for c in cols))
for n in names:
    print(f"{n:<{w}}  " + "  ".join(f"{fmt(cell.get((n, c), [])):>14}" for c in cols))
print(f"{prog}: {len(results)} results of {len(open(bootlist).readlines())} boot(s) in {out} "
      f"({meta['total_wall_s']} s of boots)", file=sys.stderr)
EOF
}
