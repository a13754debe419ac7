#!/usr/bin/env bash
# Host test of scripts/apt-sources.sh: runs its parser on fake /etc/apt trees
# (APT_ROOT) in both formats and checks what it derives. No root, no network.
#
#   scripts/test-apt-sources.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=apt-sources.sh
. "$HERE/apt-sources.sh"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0

check() {  # $1 = what, $2 = expected, $3 = actual
    if [ "$2" = "$3" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        printf 'FAIL %s\n  expected: %s\n  actual:   %s\n' "$1" "${2//$'\n'/\\n}" "${3//$'\n'/\\n}" >&2
    fi
}

tree() {  # $1 = name; makes an empty apt tree and points APT_ROOT at it
    APT_ROOT=$TMP/$1
    mkdir -p "$APT_ROOT/etc/apt/sources.list.d" "$APT_ROOT/var/lib/apt/lists" "$APT_ROOT/usr/share/keyrings"
    : > "$APT_ROOT$DEBIAN_KEYRING"
    export APT_ROOT
}
put() { mkdir -p "$(dirname "$APT_ROOT/$1")"; cat > "$APT_ROOT/$1"; }
mirror() { debian_mirror || echo "(none)"; }
key() { debian_signed_by || echo "(none)"; }
configured() { if backports_configured; then echo yes; else echo no; fi; }
has() { if suite_configured "$1"; then echo yes; else echo no; fi; }
written() {  # the file write_backports_source writes (path under APT_ROOT), without comments
    local f; f=$(write_backports_source) || { echo "(not written)"; return 0; }
    echo "${f#"$APT_ROOT"/}"
    grep -v '^#' "$f"
}
stanza() {  # $1 = URI, $2 = Signed-By (empty: none); what written() should print
    printf 'etc/apt/sources.list.d/bookworm-backports.sources\n'
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main' "$1"
    [ -z "$2" ] || printf '\nSigned-By: %s' "$2"
}

# -- deb822, as Debian 12 installs it: comments, two suites, a security stanza
tree deb822
put etc/apt/sources.list.d/debian.sources <<'EOF'
Types: deb
# a snapshot of the archive was used here once
URIs: http://pkgs.example.test/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://pkgs.example.test/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
check "deb822: mirror (trailing slash dropped)" "http://pkgs.example.test/debian" "$(mirror)"
check "deb822: key" "$DEBIAN_KEYRING" "$(key)"
check "deb822: backports before" no "$(configured)"
check "deb822: security suite" yes "$(has bookworm-security)"
check "deb822: updates suite" yes "$(has bookworm-updates)"
check "deb822: stanza" "$(stanza http://pkgs.example.test/debian "$DEBIAN_KEYRING")" "$(written)"
check "deb822: backports after" yes "$(configured)"
check "deb822: mirror after (backports is not bookworm)" "http://pkgs.example.test/debian" "$(mirror)"

# -- deb822 details: lower-case fields, several types and URIs, a disabled
#    stanza first, an inline key (not a file: Debian's keyring instead)
tree deb822-details
put etc/apt/sources.list.d/local.sources <<'EOF'
Enabled: no
Types: deb
URIs: http://disabled.example.test/debian
Suites: bookworm
Components: main

types: deb-src deb
uris: file:///srv/debian http://second.example.test/debian
suites: bookworm
components: main contrib
signed-by:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w
 -----END PGP PUBLIC KEY BLOCK-----
EOF
check "deb822 details: mirror" "file:///srv/debian" "$(mirror)"
check "deb822 details: key" "$DEBIAN_KEYRING" "$(key)"

# -- one-line, with signed-by among the options, beside a security line
tree oneline-signed
put etc/apt/sources.list <<'EOF'
# deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb [arch=amd64 signed-by=/etc/apt/keyrings/local.gpg] http://pkgs.example.test/debian bookworm main non-free-firmware
deb-src [signed-by=/etc/apt/keyrings/local.gpg] http://pkgs.example.test/debian bookworm main
deb [ signed-by=/etc/apt/keyrings/local.gpg ] http://pkgs.example.test/debian-security bookworm-security main
EOF
check "one-line signed-by: mirror" "http://pkgs.example.test/debian" "$(mirror)"
check "one-line signed-by: key" "/etc/apt/keyrings/local.gpg" "$(key)"
check "one-line signed-by: stanza" "$(stanza http://pkgs.example.test/debian /etc/apt/keyrings/local.gpg)" "$(written)"

# -- one-line without options: Debian's keyring if installed, else no Signed-By
tree oneline-plain
put etc/apt/sources.list.d/debian.list <<'EOF'
deb http://pkgs.example.test/debian bookworm main   # a comment
deb http://pkgs.example.test/debian bookworm-updates main
EOF
check "one-line plain: key" "$DEBIAN_KEYRING" "$(key)"
check "one-line plain: no security suite" no "$(has bookworm-security)"
check "one-line plain: stanza" "$(stanza http://pkgs.example.test/debian "$DEBIAN_KEYRING")" "$(written)"
rm -f "$APT_ROOT$DEBIAN_KEYRING" "$APT_ROOT/etc/apt/sources.list.d/bookworm-backports.sources"
check "one-line plain, no keyring: key" "" "$(key)"
check "one-line plain, no keyring: stanza" "$(stanza http://pkgs.example.test/debian "")" "$(written)"

# -- security only: no mirror, nothing written
tree security-only
put etc/apt/sources.list <<'EOF'
deb http://pkgs.example.test/debian-security bookworm-security main
EOF
put etc/apt/sources.list.d/security.sources <<'EOF'
Types: deb
URIs: http://pkgs.example.test/debian-security
Suites: bookworm-security
Components: main
EOF
check "security only: mirror" "(none)" "$(mirror)"
check "security only: security suite" yes "$(has bookworm-security)"
check "security only: stanza" "(not written)" "$(written)"
check "security only: no file" no "$([ -e "$APT_ROOT/etc/apt/sources.list.d/bookworm-backports.sources" ] && echo yes || echo no)"

# -- no Debian source: other vendors' suites, a bookworm suite without main,
#    a disabled file, deb-src only
tree no-debian
put etc/apt/sources.list.d/nodesource.sources <<'EOF'
Types: deb
URIs: https://vendor.example.test/node_20.x
Suites: nodistro
Components: main
EOF
put etc/apt/sources.list.d/cloud-sdk.list <<'EOF'
deb https://vendor.example.test/apt cloud-sdk-bookworm main
deb [signed-by=/etc/apt/keyrings/docker.asc] https://vendor.example.test/linux/debian bookworm stable
deb-src http://pkgs.example.test/debian bookworm main
EOF
put etc/apt/sources.list.d/debian.list.disabled <<'EOF'
deb http://pkgs.example.test/debian bookworm main
EOF
check "no Debian: mirror" "(none)" "$(mirror)"
check "no Debian: stanza" "(not written)" "$(written)"
hint=$(no_debian_source_hint)
check "no Debian: hint is one line" 1 "$(echo "$hint" | wc -l)"
case "$hint" in *"Suites: bookworm"*"run this again.") r=ok ;; *) r="$hint" ;; esac
check "no Debian: hint says what to add" ok "$r"

# -- another vendor's "bookworm main" first: its Release file says so, or its key
tree vendor-first
put etc/apt/sources.list.d/aaa-vendor.list <<'EOF'
deb [signed-by=/usr/share/keyrings/vendor.gpg] https://vendor.example.test/php/ bookworm main
EOF
put etc/apt/sources.list.d/debian.sources <<'EOF'
Types: deb
URIs: http://pkgs.example.test/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
check "vendor first, by key: mirror" "http://pkgs.example.test/debian" "$(mirror)"
printf 'Origin: Vendor\nSuite: bookworm\n' > "$APT_ROOT/var/lib/apt/lists/vendor.example.test_php_dists_bookworm_InRelease"
printf 'Origin: Debian\nSuite: stable\n' > "$APT_ROOT/var/lib/apt/lists/pkgs.example.test_debian_dists_bookworm_InRelease"
check "vendor first, by Release: mirror" "http://pkgs.example.test/debian" "$(mirror)"
rm "$APT_ROOT/etc/apt/sources.list.d/debian.sources"
check "vendor only, Release not Debian's: mirror" "(none)" "$(mirror)"

# -- backports already configured, in either format (a disabled one does not count)
tree backports-deb822
put etc/apt/sources.list.d/debian.sources <<'EOF'
Types: deb
URIs: http://pkgs.example.test/debian
Suites: bookworm bookworm-updates bookworm-backports
Components: main
EOF
check "backports in deb822: configured" yes "$(configured)"
tree backports-oneline
put etc/apt/sources.list.d/backports.list <<'EOF'
deb http://pkgs.example.test/debian bookworm-backports main contrib
EOF
check "backports one-line: configured" yes "$(configured)"
tree backports-disabled
put etc/apt/sources.list.d/backports.sources <<'EOF'
Types: deb
URIs: http://pkgs.example.test/debian
Suites: bookworm-backports
Components: main
Enabled: no
EOF
put etc/apt/sources.list.d/backports.list.save <<'EOF'
deb http://pkgs.example.test/debian bookworm-backports main
EOF
check "backports disabled: configured" no "$(configured)"

# -- an empty tree (no sources.list at all)
tree empty
check "empty: mirror" "(none)" "$(mirror)"
check "empty: backports" no "$(configured)"

if [ "$failed" != 0 ]; then
    echo "test-apt-sources: $failed of $((passed + failed)) checks failed" >&2
    exit 1
fi
echo "test-apt-sources: all $passed checks passed"
