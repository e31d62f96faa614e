#!/bin/sh
# Compares the dynamic symbols a built libdiffedit defines with the committed list abi/symbols.txt.
# Any difference (a symbol added, removed or leaked) fails: changing the ABI must be deliberate —
# edit abi/symbols.txt in the same commit.
# Usage: scripts/check_symbols.sh [path/to/libdiffedit.so.0] [abi/symbols.txt]
set -eu
lib=${1:-build/lib/libdiffedit.so.0}
list=${2:-abi/symbols.txt}
[ -f "$lib" ] || { echo "check_symbols: $lib not found (run make lib)" >&2; exit 2; }
[ -f "$list" ] || { echo "check_symbols: $list not found" >&2; exit 2; }
tmp=${TMPDIR:-/tmp}/check_symbols.$$
trap 'rm -f "$tmp".*' EXIT
# nm -D --defined-only: "ADDRESS TYPE NAME[@VERSION]". Keep global symbols (upper-case type, or 'u'
# unique global): gold leaves some hidden symbols in .dynsym as LOCAL (lower-case d/b), which no
# program can bind to. Drop version suffixes.
nm -D --defined-only "$lib" | awk 'NF >= 3 && $2 ~ /^[A-Zu]$/ { sub(/@.*/, "", $3); print $3 }' | LC_ALL=C sort -u > "$tmp.built"
grep -v '^[[:space:]]*\(#\|$\)' "$list" | LC_ALL=C sort -u > "$tmp.want"
if diff -u "$tmp.want" "$tmp.built" > "$tmp.diff"; then
    echo "check_symbols: $lib exports exactly the $(wc -l < "$tmp.want") symbols of $list"
else
    echo "check_symbols: exported symbols of $lib differ from $list (- listed, + built):" >&2
    tail -n +3 "$tmp.diff" >&2
    exit 1
fi
