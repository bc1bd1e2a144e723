#!/bin/bash
# Run every tests/integration/*/test-*.sh (or the ones named), each with a
# time limit, and end with the plain "N passed, N failed" line. Under
# CI=true a skip (exit 77) counts as a failure.
#
# Tests run INTEGRATION_JOBS at a time (default 2). A script that must not
# meet another such script (a fixed port, a guest under TCG, a
# timing-sensitive crash) says so with a line "# imgfuse-test: serial (why)";
# those run one at a time, each beside ordinary scripts.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ $# -gt 0 ]; then tests=("$@"); else mapfile -t tests < <(ls */test-*.sh | sort); fi
jobs_max=${INTEGRATION_JOBS:-2}
[[ $jobs_max =~ ^[1-9][0-9]*$ ]] || { echo "INTEGRATION_JOBS must be a positive number" >&2; exit 2; }
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

parallel=() serial=()
for t in "${tests[@]}"; do
    if grep -q '^# imgfuse-test: serial' "$t" 2>/dev/null; then serial+=("$t"); else parallel+=("$t"); fi
done

# run_one INDEX TEST: runs it, leaves "rc secs" in $results/INDEX.rc and its
# output in $results/INDEX.log.
run_one() {
    local start rc
    start=$(date +%s.%N)
    timeout -k 10 "${TEST_TIMEOUT:-300}" bash "$2" >"$results/$1.log" 2>&1
    rc=$?
    echo "$rc $(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")" >"$results/$1.rc"
}

pass=0 failed=0 skipped=0 failures=()
report() {
    local t=$2 rc secs
    read -r rc secs <"$results/$1.rc"
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1)); echo "PASS $t (${secs}s)"
    elif [ "$rc" -eq 77 ] && [ "${CI:-}" != "true" ]; then
        skipped=$((skipped + 1)); echo "SKIP $t"; sed 's/^/    /' "$results/$1.log" | tail -5
    else
        failed=$((failed + 1)); failures+=("$t"); echo "FAIL $t (rc=$rc, ${secs}s)"
        sed 's/^/    /' "$results/$1.log" | tail -40
    fi
}

# At most INTEGRATION_JOBS scripts at once, and at most one serial script
# among them; serial scripts are started first, as soon as none runs.
declare -A running=()    # pid -> index
names=() serial_flag=()
serial_running=0
finish_one() {
    local done_pid idx
    wait -n -p done_pid "${!running[@]}"
    idx=${running[$done_pid]}; unset "running[$done_pid]"
    [ "${serial_flag[$idx]}" = 1 ] && serial_running=0
    report "$idx" "${names[$idx]}"
}
i=0 si=0 pi=0
while [ $si -lt ${#serial[@]} ] || [ $pi -lt ${#parallel[@]} ] || [ ${#running[@]} -gt 0 ]; do
    while [ ${#running[@]} -lt "$jobs_max" ]; do
        if [ $si -lt ${#serial[@]} ] && [ $serial_running = 0 ]; then
            names[i]=${serial[si]}; serial_flag[i]=1; si=$((si + 1)); serial_running=1
        elif [ $pi -lt ${#parallel[@]} ]; then
            names[i]=${parallel[pi]}; serial_flag[i]=0; pi=$((pi + 1))
        else
            break
        fi
        run_one "$i" "${names[i]}" &
        running[$!]=$i
        i=$((i + 1))
    done
    [ ${#running[@]} -gt 0 ] && finish_one
done

[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "integration: $pass passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
