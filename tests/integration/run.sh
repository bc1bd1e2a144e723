#!/bin/bash
# Run every tests/integration/*/test-*.sh (or the ones named), each with a
# time limit, and end with the plain "N passed, N failed" line. Under
# CI=true a skip (exit 77) counts as a failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ $# -gt 0 ]; then tests=("$@"); else mapfile -t tests < <(ls */test-*.sh | sort); fi
pass=0 failed=0 skipped=0 failures=()
for t in "${tests[@]}"; do
    start=$(date +%s.%N)
    log=$(mktemp)
    timeout -k 10 ${TEST_TIMEOUT:-300} bash "$t" >"$log" 2>&1
    rc=$?
    secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1)); echo "PASS $t (${secs}s)"
    elif [ $rc -eq 77 ] && [ "${CI:-}" != "true" ]; then
        skipped=$((skipped + 1)); echo "SKIP $t"; sed 's/^/    /' "$log" | tail -5
    else
        failed=$((failed + 1)); failures+=("$t"); echo "FAIL $t (rc=$rc, ${secs}s)"
        sed 's/^/    /' "$log" | tail -40
    fi
    rm -f "$log"
done
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "integration: $pass passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
