#!/bin/bash
# Run every fuzz target built in BUILDDIR (fuzz-<name>, from
# tests/fuzz/<name>.c) briefly over its seeds: the files in tests/data/<name>/
# (decompressed; at most 16 MiB each), else $SHARED_IMAGES/generated/
# gen-<name>*, or the lines of tests/fuzz/<name>.seeds for targets that take
# strings. Mutations are deterministic (see harness.h); each target gets an
# equal share of FUZZ_BUDGET seconds (default 42, at most 8 s per target).
#
# usage: tests/fuzz/run.sh BUILDDIR [NAME...]
# Prints one line per target and "fuzz: N passed, N failed"; exits 1 when a
# target crashed, hung or a sanitizer reported anything. The log of a failed
# target is in BUILDDIR/fuzz-logs/<name>.log and the input that failed in
# BUILDDIR/fuzz-crashes/<name>.input (replay: fuzz-<name> -r FILE).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: tests/fuzz/run.sh BUILDDIR [NAME...]}
shift
build=$(cd "$build" && pwd) || exit 1
shared=${SHARED_IMAGES:-$root/../shared/images}
budget=${FUZZ_BUDGET:-42}
max_seed=$((16 << 20))

if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for exe in "$build"/fuzz-*; do
        [ -f "$exe" ] && [ -x "$exe" ] && names+=("${exe##*/fuzz-}")
    done
fi
if [ ${#names[@]} -eq 0 ]; then
    echo "fuzz: no fuzz-<name> executables in $build (meson option fuzz off?)"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi
per=$(awk -v b="$budget" -v n=${#names[@]} 'BEGIN { s = b / n; if (s > 8) s = 8; printf "%.1f", s }')

scratch=$(mktemp -d /tmp/imgfuse-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/tmp"
export TMPDIR=$scratch/tmp          # a crashed target's image file goes too
mkdir -p "$build/fuzz-logs" "$build/fuzz-crashes"
ulimit -c 0
# sanitizer reports must end the run; user settings given later win
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"

# Seed files of target $1, one a line, decompressed into $scratch.
seed_files() {
    local name=$1 f out
    local -a src=()
    if [ -d "$root/tests/data/$name" ]; then
        src=("$root/tests/data/$name"/*)
    elif [ -d "$shared/generated" ]; then
        src=("$shared/generated/gen-$name"*)
    fi
    mkdir -p "$scratch/$name"
    for f in "${src[@]}"; do
        [ -f "$f" ] || continue
        out=$scratch/$name/${f##*/}
        case $f in
        *.md|*.txt) continue ;;
        *.gz) out=${out%.gz}; zcat "$f" | head -c $((max_seed + 1)) >"$out" ;;
        *.bz2) out=${out%.bz2}; bzcat "$f" | head -c $((max_seed + 1)) >"$out" ;;
        *.xz) out=${out%.xz}; xzcat "$f" | head -c $((max_seed + 1)) >"$out" ;;
        *) out=$f ;;
        esac
        if [ "$(stat -c %s "$out")" -le $max_seed ] && [ -s "$out" ]; then
            echo "$out"
        fi
    done
}

passed=0
failed=0
for name in "${names[@]}"; do
    exe=$build/fuzz-$name
    log=$build/fuzz-logs/$name.log
    crash=$build/fuzz-crashes/$name.input
    rm -f "$crash"
    if [ -f "$here/$name.seeds" ]; then
        mapfile -t seeds < <(grep -v '^#' "$here/$name.seeds" | grep -v '^$')
    else
        mapfile -t seeds < <(seed_files "$name")
    fi
    if [ ! -x "$exe" ] || [ ${#seeds[@]} -eq 0 ]; then
        printf 'FAIL %-16s no executable or no seeds\n' "fuzz-$name"
        failed=$((failed + 1))
        continue
    fi
    start=$(date +%s.%N)
    # in a subshell whose stderr is dropped: no "Aborted" notice from bash
    (timeout -k 5 $(( ${per%.*} + 60 )) "$exe" -t "$per" -T 20 -o "$crash" \
        "${seeds[@]}" >"$log" 2>&1; exit $?) 2>/dev/null
    rc=$?
    took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    if [ $rc -eq 0 ] && ! grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$log"; then
        printf 'ok   %-16s %3d seeds %7d inputs %5s s\n' "fuzz-$name" \
            ${#seeds[@]} "$(tail -n 1 "$log" | awk '{ print $1 }')" "$took"
        passed=$((passed + 1))
    else
        printf 'FAIL %-16s exit %d after %s s; log %s%s\n' "fuzz-$name" $rc \
            "$took" "$log" "$([ -f "$crash" ] && echo "; input $crash")"
        grep -m 1 -A 30 -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:|fuzz: ' \
            "$log" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
