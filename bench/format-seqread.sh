#!/bin/bash
# Sequential read of a fully allocated image of FORMAT (warm, O_DIRECT on
# the mounted file) through imgfuse and through qemu-storage-daemon's FUSE
# export of the same image, best of 3 each, in one run; prints the ratio.
#   bench/format-seqread.sh FORMAT [MiB] [qemu-img convert -o options]
# e.g. bench/format-seqread.sh vpc 2048 subformat=dynamic
# Exits 1 when imgfuse is below 2x qsd (the issues' target).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMGFUSE=${IMGFUSE:-$ROOT/build/imgfuse}
FMT=${1:?usage: format-seqread.sh FORMAT [MiB] [convert options]}
MIB=${2:-2048}
OPTS=${3:-}
T=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-$FMT.XXXXXX")
QSD_PID=
cleanup() {
    fusermount3 -u "$T/mnt" 2>/dev/null || true
    [ -n "$QSD_PID" ] && kill "$QSD_PID" 2>/dev/null || true
    sleep 0.3
    rm -rf "$T"
}
. "$(dirname "$0")/chart-hook.sh"
trap 'cleanup; [ -z "${_BENCH_CHART_ON:-}" ] || _bench_chart' EXIT

head -c "${MIB}M" /dev/urandom >"$T/src.raw"
qemu-img convert -f raw -O "$FMT" ${OPTS:+-o "$OPTS"} "$T/src.raw" "$T/disk.img"
rm -f "$T/src.raw"
cat "$T/disk.img" >/dev/null                      # warm the page cache

rate() {
    local t0 t1
    t0=$(date +%s.%N)
    dd if="$T/mnt" of=/dev/null bs=1M iflag=direct status=none
    t1=$(date +%s.%N)
    echo "scale=1; $MIB / ($t1 - $t0)" | bc
}
best() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -1; }

ours="" qsd=""
for run in 1 2 3; do
    "$IMGFUSE" -r -F "$FMT" "$T/disk.img" "$T/mnt"
    ours+="$(rate) "
    fusermount3 -u "$T/mnt"
    sleep 0.5
    touch "$T/mnt"
    qemu-storage-daemon \
        --blockdev driver=file,node-name=f,filename="$T/disk.img",read-only=on \
        --blockdev driver="$FMT",node-name=v,file=f,read-only=on \
        --export type=fuse,id=e,node-name=v,mountpoint="$T/mnt" >"$T/qsd.log" 2>&1 &
    QSD_PID=$!
    for _ in $(seq 200); do
        grep -q " $T/mnt fuse" /proc/mounts && break
        sleep 0.05
    done
    qsd+="$(rate) "
    fusermount3 -u "$T/mnt"
    kill "$QSD_PID" 2>/dev/null || true       # qsd may not exit on unmount
    wait "$QSD_PID" 2>/dev/null || true
    QSD_PID=
done
a=$(echo "$ours" | best) b=$(echo "$qsd" | best)
ratio=$(echo "scale=2; $a / $b" | bc)
echo "$FMT${OPTS:+ ($OPTS)} ${MIB} MiB sequential read, warm, O_DIRECT: imgfuse ${a} MiB/s, qsd ${b} MiB/s, ratio ${ratio}x (want >= 2)"
[ "$(echo "$ratio >= 2" | bc)" = 1 ]
