#!/usr/bin/env bash
# Runs the POWER memory-model litmus tests of the kernel's barriers
# (litmus/*.litmus, README "Litmus tests (POWER's memory model)") through
# herd7 with ppc.cat, and compares each test's Observation line with the
# "(* Result: Never|Sometimes|Always *)" comment in the file.
#
#   scripts/litmus.sh            (make litmus)
#   HERD7=/path/to/herd7         the herd7 to use (default: herd7 on PATH)
#   HERDLIB=/dir                 where ppc.cat and its includes are (default:
#                                herd7's own libdir, else found next to it)
#   LITMUS_DIR=/dir              run the tests in another folder (default:
#                                litmus/ of this repository)
#
# Prints one line per test and "litmus: N passed, M failed"; exits 1 if a
# test's verdict differs from its expected result, or a test has no
# expected result or herd7 gave no verdict. Without herd7 it says how to
# get it and exits 0.
set -euo pipefail
export LC_ALL=C # the tests' order

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${LITMUS_DIR:-$repo/litmus}

if [ -n "${HERD7:-}" ]; then
    herd=$HERD7
    if ! command -v "$herd" >/dev/null 2>&1; then
        echo "litmus: HERD7=$herd is not an executable" >&2
        exit 1
    fi
elif command -v herd7 >/dev/null 2>&1; then
    herd=herd7
else
    echo "litmus: herd7 not found, skipping the litmus tests (install it with 'opam install herdtools7', or on Debian 12 build herdtools7 tag 7.57 from source: apt-get install ocaml-nox ocaml-dune menhir libmenhir-ocaml-dev libzarith-ocaml-dev, then in its tree 'sh ./version-gen.sh /usr/local' and 'dune build -j 2 --profile release herd/herd.exe', then copy _build/default/herd/herd.exe to /usr/local/bin/herd7 and herd/libdir to /usr/local/share/herdtools7/herd; or set HERD7=)."
    exit 0
fi

# herd7 looks for ppc.cat in the current directory, then in $HERDLIB, then
# in the libdir compiled into it. Use HERDLIB if set; otherwise, if the
# compiled-in libdir has no ppc.cat (a binary copied from a build tree),
# look beside the binary and in the usual install prefixes.
libdir_opts=()
libdir=""
if [ -n "${HERDLIB:-}" ]; then
    libdir=$HERDLIB
else
    builtin_libdir=$("$herd" -libdir 2>/dev/null || true)
    if [ -n "$builtin_libdir" ] && [ -f "$builtin_libdir/ppc.cat" ]; then
        libdir=$builtin_libdir
    else
        herd_path=$(command -v "$herd")
        herd_bin=$(cd "$(dirname "$herd_path")" && pwd)
        for candidate in "$herd_bin/../share/herdtools7/herd" /usr/local/share/herdtools7/herd \
            /usr/share/herdtools7/herd "${OPAM_SWITCH_PREFIX:-/nonexistent}/share/herdtools7/herd"; do
            if [ -f "$candidate/ppc.cat" ]; then
                libdir=$(cd "$candidate" && pwd)
                libdir_opts=(-set-libdir "$libdir")
                break
            fi
        done
    fi
fi
if [ -z "$libdir" ] || [ ! -f "$libdir/ppc.cat" ]; then
    echo "litmus: $herd cannot find ppc.cat (set HERDLIB= to herdtools7's herd/libdir)" >&2
    exit 1
fi

if [ ! -d "$dir" ]; then
    echo "litmus: no folder $dir" >&2
    exit 1
fi
dir=$(cd "$dir" && pwd)
shopt -s nullglob
tests=("$dir"/*.litmus)
if [ "${#tests[@]}" -eq 0 ]; then
    echo "litmus: no tests in $dir" >&2
    exit 1
fi

# herd7 reads a ppc.cat in its working directory before its libdir: run it
# in an empty one.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

version=$("$herd" -version 2>/dev/null || true)
version=${version%%$'\n'*}
echo "litmus: herd7 ${version:-(unknown version)}, ppc.cat from $libdir, tests in $dir"

passed=0
failed=0
for test in "${tests[@]}"; do
    file=$(basename "$test")
    name=$(awk 'NR == 1 { print $2; exit }' "$test")
    [ -n "$name" ] || name=${file%.litmus}
    expected=$(sed -n 's/.*(\* *Result: *\([A-Za-z]*\) *\*).*/\1/p; T; q' "$test")
    case $expected in
        Never | Sometimes | Always) ;;
        *) expected="" ;;
    esac
    herd_status=0
    output=$(cd "$work" && "$herd" "${libdir_opts[@]}" -model ppc.cat "$test" 2>&1) || herd_status=$?
    got=$(awk -v n="$name" '$1 == "Observation" && $2 == n { print $3; exit }' <<<"$output")
    if [ -z "$expected" ]; then
        verdict="FAIL (no '(* Result: Never|Sometimes|Always *)' comment)"
    elif [ -z "$got" ]; then
        verdict="FAIL (no Observation line from herd7, exit status $herd_status)"
    elif [ "$got" = "$expected" ]; then
        verdict=ok
    else
        verdict=FAIL
    fi
    printf '%-52s expected %-9s got %-9s %s\n' "$name" "${expected:-?}" "${got:-?}" "$verdict"
    if [ "$verdict" = ok ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        if [ -z "$got" ]; then
            awk 'NR <= 20 { print "    herd7: " $0 }' <<<"$output"
        fi
    fi
done

echo "litmus: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
