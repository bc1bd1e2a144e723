# Sourced by every bench script (lib.sh sources it): the script's output is
# also kept in bench/out/<script>.md and, at exit, its first markdown table
# is drawn as bench/out/<script>.svg (bench/chart.py). BENCH_CHART=0 turns
# it off.
if [ "${BENCH_CHART:-1}" != 0 ] && [ -z "${_BENCH_CHART_ON:-}" ]; then
    _BENCH_CHART_ON=1
    _bench_name=$(basename "$0" .sh)
    _bench_out=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/out
    mkdir -p "$_bench_out"
    exec > >(tee "$_bench_out/$_bench_name.md")
    _bench_tee=$!
    _bench_chart() {
        exec 1>/dev/null
        wait "$_bench_tee" 2>/dev/null || true
        if python3 "$(dirname "$_bench_out")/chart.py" "$_bench_out/$_bench_name.md" \
                "$_bench_out/$_bench_name.svg" 2>/dev/null; then
            echo "chart: $_bench_out/$_bench_name.svg" >&2
        fi
    }
fi
