# shellcheck shell=bash
# Reads the machine's apt sources, so that nothing in this repository has to name
# a package mirror: the Debian mirror is whatever the machine already uses.
# Sourced by scripts/deps.sh and bench/linux/run.sh; scripts/test-apt-sources.sh
# tests it on fake apt trees.
#
#   apt_source_entries         one line per enabled source: type, URI, suite,
#                              Signed-By, components (tab-separated), file
#   debian_mirror              the URI of the Debian bookworm source ("deb URI
#                              bookworm main"), without a trailing slash
#   debian_signed_by           that source's keyring (its Signed-By, else
#                              Debian's archive keyring if installed, else nothing)
#   suite_configured SUITE     true if some enabled "deb" source carries SUITE
#   backports_configured       suite_configured bookworm-backports
#   write_backports_source     writes sources.list.d/bookworm-backports.sources
#                              with the Debian bookworm source's URI and key
#   no_debian_source_hint      the sentence telling what to add
#
# Both apt formats are read: deb822 stanzas (sources.list.d/*.sources: Types,
# URIs, Suites, Components, Signed-By, Enabled) and one-line entries
# (sources.list, sources.list.d/*.list: deb [options] URI suite components).
# APT_ROOT (default /) is the root the apt tree is read from and written to.

DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

_strip_slashes() { local s=$1; while [ "${s%/}" != "$s" ]; do s=${s%/}; done; echo "$s"; }
_apt_etc() { _strip_slashes "${APT_ROOT:-/}"; }

# The source files in the order apt reads them.
_apt_source_files() {
    local etc f; etc=$(_apt_etc)/etc/apt
    [ -f "$etc/sources.list" ] && echo "$etc/sources.list"
    for f in "$etc"/sources.list.d/*; do
        case "$f" in *.list|*.sources) [ -f "$f" ] && echo "$f" ;; esac
    done
    return 0
}

apt_source_entries() {
    local f
    _apt_source_files | while IFS= read -r f; do
        case "$f" in
            *.sources) _apt_parse_deb822 "$f" ;;
            *) _apt_parse_oneline "$f" ;;
        esac
    done
}

_apt_parse_deb822() {  # $1 = file
    awk -v file="$1" '
        function flush(   nt, nu, ns, t, u, s, T, U, S, key) {
            if (nfields && tolower(f["enabled"]) != "no") {
                key = f["signed-by"]
                if (key ~ /BEGIN PGP/) key = ""        # an inline key: not a file to reuse
                gsub(/[ \t\n]+/, " ", key); sub(/^ /, "", key); sub(/ $/, "", key)
                nt = split(f["types"], T, /[ \t\n]+/)
                nu = split(f["uris"], U, /[ \t\n]+/)
                ns = split(f["suites"], S, /[ \t\n]+/)
                gsub(/[ \t\n]+/, " ", f["components"]); sub(/^ /, "", f["components"])
                for (t = 1; t <= nt; t++) for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++)
                    if (T[t] != "" && U[u] != "" && S[s] != "")
                        printf "%s\t%s\t%s\t%s\t%s\t%s\n", T[t], U[u], S[s], key, f["components"], file
            }
            delete f; nfields = 0; last = ""
        }
        /^#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { if (last != "") f[last] = f[last] "\n" $0; next }
        {
            i = index($0, ":"); if (!i) next
            last = tolower(substr($0, 1, i - 1))
            v = substr($0, i + 1); sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
            f[last] = v; nfields++
        }
        END { flush() }
        ' "$1"
}

_apt_parse_oneline() {  # $1 = file
    awk -v file="$1" '
        {
            sub(/#.*/, "")
            n = split($0, w, /[ \t]+/); i = 1
            while (i <= n && w[i] == "") i++
            type = w[i++]
            if (type != "deb" && type != "deb-src") next
            key = ""
            if (substr(w[i], 1, 1) == "[") {          # [opt=value ...]
                opts = ""
                while (i <= n) { opts = opts " " w[i]; if (w[i++] ~ /\]$/) break }
                gsub(/[][]/, " ", opts)
                m = split(opts, o, /[ \t]+/)
                for (j = 1; j <= m; j++) if (o[j] ~ /^signed-by=/) key = substr(o[j], 11)
            }
            uri = w[i++]; suite = w[i++]; comps = ""
            for (; i <= n; i++) if (w[i] != "") comps = comps (comps == "" ? "" : " ") w[i]
            if (uri != "" && suite != "")
                printf "%s\t%s\t%s\t%s\t%s\t%s\n", type, uri, suite, key, comps, file
        }
        ' "$1"
}

# The Release file apt keeps for URI + suite, if it ran `apt-get update` for it.
_apt_release_file() {  # $1 = URI, $2 = suite
    local name f
    name=$(echo "${1%/}" | sed -e 's|^[a-z+]*://||' -e 's|/|_|g')_dists_$2
    for f in "$(_apt_etc)/var/lib/apt/lists/${name}_InRelease" "$(_apt_etc)/var/lib/apt/lists/${name}_Release"; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

# The Debian bookworm source: "deb" entries of suite bookworm with component
# main. One whose Release file (if apt fetched it) names another origin is not
# Debian's; among the rest, one known to be Debian's comes first, then one with
# no Signed-By or Debian's keyring, then any other. Prints URI<TAB>Signed-By.
_debian_source() {
    local type uri suite key comps _file rank rel
    # (read splits on \037: tabs would merge around an empty Signed-By)
    apt_source_entries | tr '\t' '\037' | while IFS=$'\037' read -r type uri suite key comps _file; do
        if [ "$type" != deb ] || [ "$suite" != bookworm ]; then continue; fi
        case " $comps " in *" main "*) ;; *) continue ;; esac
        rank=2
        case "$key" in ""|*debian-archive-keyring*) rank=1 ;; esac
        if rel=$(_apt_release_file "$uri" "$suite"); then
            if grep -q '^Origin: Debian$' "$rel"; then rank=0; else continue; fi
        fi
        printf '%s\t%s\t%s\n' "$rank" "$uri" "$key"
    done | sort -s -n -k1,1 | awk -F '\t' 'NR == 1 { print $2 "\t" $3 }'
}

debian_mirror() {
    local s; s=$(_debian_source)
    [ -n "$s" ] || return 1
    s=${s%%$'\t'*}
    _strip_slashes "$s"
}

debian_signed_by() {
    local s key; s=$(_debian_source)
    [ -n "$s" ] || return 1
    key=${s#*$'\t'}
    if [ -z "$key" ] && [ -f "$(_apt_etc)$DEBIAN_KEYRING" ]; then key=$DEBIAN_KEYRING; fi
    [ -z "$key" ] || echo "$key"
}

suite_configured() {  # (awk, not grep -q, reads all input: no SIGPIPE under pipefail)
    apt_source_entries | awk -F '\t' -v suite="$1" '$1 == "deb" && $3 == suite { n++ } END { exit !n }'
}
backports_configured() { suite_configured bookworm-backports; }

no_debian_source_hint() {
    echo "this machine's apt has no Debian bookworm source (in /etc/apt/sources.list or" \
        "/etc/apt/sources.list.d/): add your Debian mirror's bookworm suite, e.g. as" \
        "/etc/apt/sources.list.d/debian.sources with" \
        "'Types: deb', 'URIs: <your Debian mirror>', 'Suites: bookworm bookworm-updates'," \
        "'Components: main' and 'Signed-By: $DEBIAN_KEYRING', and run this again."
}

write_backports_source() {  # prints the file it wrote; fails if there is no Debian source
    local uri key out
    uri=$(debian_mirror) || return 1
    key=$(debian_signed_by) || true
    out=$(_apt_etc)/etc/apt/sources.list.d/bookworm-backports.sources
    {
        echo "# Added by ppc64-kernel's scripts/deps.sh for QEMU >= 9.1: the mirror and key"
        echo "# of this machine's Debian bookworm source."
        echo "Types: deb"
        echo "URIs: $uri"
        echo "Suites: bookworm-backports"
        echo "Components: main"
        [ -z "$key" ] || echo "Signed-By: $key"
    } > "$out" || return 1
    echo "$out"
}
