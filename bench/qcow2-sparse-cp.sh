#!/bin/bash
# cp --sparse=always of an 8 GiB qcow2 holding 1 GiB of scattered data,
# through imgfuse and through qemu-storage-daemon's FUSE export, against
# qemu-img convert -O raw of the same image (issue 3: imgfuse within 2x of
# qemu-img convert). One run, best of 2 each.
#   bench/qcow2-sparse-cp.sh [VIRTUAL_GiB] [DATA_MiB]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMGFUSE=${IMGFUSE:-$ROOT/build/imgfuse}
GIB=${1:-8}
DATA=${2:-1024}
T=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-sparse.XXXXXX")
QSD_PID=
cleanup() {
    fusermount3 -u "$T/mnt" 2>/dev/null || true
    [ -n "$QSD_PID" ] && kill "$QSD_PID" 2>/dev/null || true
    sleep 0.3
    rm -rf "$T"
}
. "$(dirname "$0")/chart-hook.sh"
trap 'cleanup; [ -z "${_BENCH_CHART_ON:-}" ] || _bench_chart' EXIT

# DATA MiB in 1 MiB pieces spread evenly over the disk
qemu-img create -q -f qcow2 "$T/disk.qcow2" "${GIB}G"
step=$((GIB * 1024 / DATA))
cmds=()
for ((i = 0; i < DATA; i++)); do cmds+=(-c "write -P $((i % 250 + 1)) $((i * step))M 1M"); done
qemu-io -f qcow2 "${cmds[@]}" "$T/disk.qcow2" >/dev/null
cat "$T/disk.qcow2" >/dev/null

secs() { local t0; t0=$(date +%s.%N); "$@"; echo "$(date +%s.%N) - $t0" | bc; }
best() { tr ' ' '\n' | grep -v '^$' | sort -g | head -1; }

conv="" ours="" qsd=""
for run in 1 2; do
    rm -f "$T/out.raw"
    conv+="$(secs qemu-img convert -f qcow2 -O raw "$T/disk.qcow2" "$T/out.raw") "
    sum=$(sha256sum < "$T/out.raw")
    rm -f "$T/out.raw"
    "$IMGFUSE" -r -F qcow2 "$T/disk.qcow2" "$T/mnt"
    ours+="$(secs cp --sparse=always "$T/mnt" "$T/out.raw") "
    fusermount3 -u "$T/mnt"
    [ "$(sha256sum < "$T/out.raw")" = "$sum" ] || { echo "imgfuse copy differs" >&2; exit 1; }
    rm -f "$T/out.raw"
    touch "$T/mnt"
    qemu-storage-daemon \
        --blockdev driver=file,node-name=f,filename="$T/disk.qcow2",read-only=on \
        --blockdev driver=qcow2,node-name=v,file=f,read-only=on \
        --export type=fuse,id=e,node-name=v,mountpoint="$T/mnt" >/dev/null 2>&1 &
    QSD_PID=$!
    for _ in $(seq 200); do grep -q " $T/mnt fuse" /proc/mounts && break; sleep 0.05; done
    qsd+="$(secs cp --sparse=always "$T/mnt" "$T/out.raw") "
    fusermount3 -u "$T/mnt"
    kill "$QSD_PID" 2>/dev/null || true
    wait "$QSD_PID" 2>/dev/null || true
    QSD_PID=
    rm -f "$T/out.raw"
done
a=$(echo "$ours" | best) b=$(echo "$conv" | best) c=$(echo "$qsd" | best)
echo "cp --sparse=always of a ${GIB} GiB qcow2 with ${DATA} MiB of data: imgfuse ${a}s, qemu-img convert ${b}s, qsd ${c}s; imgfuse/convert $(echo "scale=2; $a / $b" | bc)x (want <= 2), qsd/convert $(echo "scale=2; $c / $b" | bc)x"
