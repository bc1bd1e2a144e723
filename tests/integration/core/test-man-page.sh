#!/bin/bash
# docs/imgfuse.1 documents every option --help lists, and man renders it.
. "$(dirname "$0")/../lib.sh"

man=$ROOT/docs/imgfuse.1
"$IMGFUSE" --help > "$T/help"
mapfile -t opts < <(grep -oE '^ +(-[a-zA-Z], )?--?[a-z][a-z-]*' "$T/help" | grep -oE -- '--?[a-z][a-z-]*$')
[ ${#opts[@]} -ge 20 ] || fail "found only ${#opts[@]} options in --help"
for o in "${opts[@]}"; do
    esc=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
    grep -q -- "$esc" "$man" || fail "option $o from --help is missing in docs/imgfuse.1"
done
# and the other way: every long option in the man page is one --help knows
mapfile -t manopts < <(grep -oE '\\-\\-[a-z]([a-z]|\\-)*' "$man" | sed 's/\\//g' | sort -u)
for o in "${manopts[@]}"; do
    grep -q -- "$o" "$T/help" || fail "docs/imgfuse.1 documents $o, which --help does not list"
done
if command -v man >/dev/null; then
    MANWIDTH=80 man -l "$man" > "$T/rendered" 2>"$T/warn" || fail "man cannot render the page"
    grep -q "force-share" "$T/rendered" || fail "rendered page lacks options"
fi
"$IMGFUSE" --version | grep -qE '^imgfuse [0-9]+\.[0-9]+' || fail "--version"
echo "checked ${#opts[@]} options"
