#!/bin/bash
# Coverage-guided fuzzing of every target with libFuzzer (clang).
#
# usage: tests/fuzz/libfuzzer.sh [-s SECONDS] [-m] [NAME...]
#   Builds build-fuzz/ (CC=clang, -Dlibfuzzer=true, ASan and UBSan) when
#   needed, then runs each fuzz-<name> for SECONDS (default 5) on a working
#   corpus: tests/fuzz/corpus/<name>/ (kept in the repo, minimised) plus the
#   seeds tests/fuzz/run.sh uses, each seed given its mode byte. -m merges
#   what the run found back into tests/fuzz/corpus/<name>/ (minimised: only
#   inputs that add coverage, at most 256 KiB each).
# Prints per target: executions, coverage (edges, "cov"), features, corpus
# size and crashes; exits 1 when a target crashed, leaked, timed out or hit
# a sanitizer. The input is kept in build-fuzz/fuzz-crashes/<name>/.
# tests/fuzz/long.sh runs this for 10 minutes a target.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=5 merge=false
while getopts "s:m" o; do
    case $o in
    s) secs=$OPTARG ;;
    m) merge=true ;;
    *) echo "usage: $0 [-s SECONDS] [-m] [NAME...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
build=$root/build-fuzz
shared=${SHARED_IMAGES:-$root/../shared/images}

if [ ! -f "$build/meson-private/coredata.dat" ]; then
    werror=false
    [ "${CI:-}" = true ] && werror=true
    CC=clang meson setup "$build" "$root" --buildtype=debugoptimized \
        -Db_sanitize=address,undefined -Db_lundef=false -Dlibfuzzer=true \
        -Dwerror=$werror -Db_ndebug=false >"$build.setup.log" 2>&1 ||
        { cat "$build.setup.log"; exit 1; }
fi
ninja -C "$build" fuzz >"$build/fuzz-build.log" 2>&1 ||
    { tail -40 "$build/fuzz-build.log"; exit 1; }

if [ $# -gt 0 ]; then
    names=("$@")
else
    names=()
    for exe in "$build"/fuzz-*; do
        [ -f "$exe" ] && [ -x "$exe" ] && names+=("${exe##*/fuzz-}")
    done
fi
scratch=$(mktemp -d /tmp/imgfuse-libfuzzer.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/tmp"
export TMPDIR=$scratch/tmp
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
ulimit -c 0

# seeds NAME DIR: the run.sh seeds of NAME in libFuzzer's form into DIR.
seeds() {
    local name=$1 dir=$2 f i=0 src=()
    if [ -f "$here/$name.seeds" ]; then
        grep -v '^#' "$here/$name.seeds" | grep -v '^$' | while IFS= read -r line; do
            i=$((i + 1)); printf '%s' "$line" >"$dir/seed-$i"
        done
        return
    fi
    if [ -d "$root/tests/data/$name" ]; then
        src=("$root/tests/data/$name"/*)
    elif [ -d "$shared/generated" ]; then
        src=("$shared/generated/gen-$name"*)
    fi
    for f in "${src[@]}"; do
        [ -f "$f" ] || continue
        case $f in *.md|*.txt) continue ;; esac
        i=$((i + 1))
        { printf '\0'
          case $f in
          *.gz) zcat "$f" ;; *.bz2) bzcat "$f" ;; *.xz) xzcat "$f" ;; *) cat "$f" ;;
          esac; } 2>/dev/null | head -c $((16 << 20)) >"$dir/seed-$i"
    done
}

failed=0 passed=0
for name in "${names[@]}"; do
    exe=$build/fuzz-$name
    work=$scratch/$name
    crashes=$build/fuzz-crashes/$name
    mkdir -p "$work" "$crashes"
    seeds "$name" "$work"
    [ -d "$here/corpus/$name" ] && cp "$here/corpus/$name"/* "$work"/ 2>/dev/null
    # inputs as long as the longest seed (metadata can sit megabytes in)
    maxlen=$(find "$work" -type f -printf '%s\n' | sort -n | tail -1)
    [ "${maxlen:-0}" -ge 4096 ] || maxlen=4096
    log=$build/fuzz-logs/$name.libfuzzer.log
    mkdir -p "$build/fuzz-logs"
    timeout -k 10 $((secs + 120)) "$exe" -seed=1 -max_total_time="$secs" \
        -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 -max_len="$maxlen" \
        -artifact_prefix="$crashes/" "$work" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    corp=$(ls "$work" | wc -l)
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        printf 'ok   %-16s %8s execs  cov %6s  ft %6s  corpus %5s  crashes 0\n' \
            "fuzz-$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corp"
    else
        failed=$((failed + 1))
        printf 'FAIL %-16s exit %d  %8s execs  cov %6s; log %s; input in %s\n' \
            "fuzz-$name" $rc "${execs:-?}" "${cov:-?}" "$log" "$crashes"
        grep -m 1 -A 25 -E 'ERROR: |runtime error:|ALARM|deadly signal' "$log" | sed 's/^/    /'
    fi
    if $merge && [ $rc -eq 0 ]; then
        mkdir -p "$here/corpus/$name" "$scratch/merged-$name"
        find "$work" -type f -size +256k -delete
        "$exe" -merge=1 -max_len=262144 "$scratch/merged-$name" "$work" >/dev/null 2>&1
        rm -f "$here/corpus/$name"/*
        cp "$scratch/merged-$name"/* "$here/corpus/$name"/ 2>/dev/null
        echo "     corpus/$name: $(ls "$here/corpus/$name" | wc -l) inputs, $(du -sh "$here/corpus/$name" | cut -f1)"
    fi
done
echo "libfuzzer: $passed passed, $failed failed"
[ $failed -eq 0 ]
