#!/bin/bash
# Sequential read of a fully allocated vmdk (warm, O_DIRECT on the mounted
# file) through imgfuse and through qemu-storage-daemon's FUSE export of the
# same image, best of 3 each (the issue asks for imgfuse >= 2x qsd).
# usage: bench/vmdk-seqread.sh [MiB] [SUBFORMAT]
#        (defaults 2048 and monolithicSparse; any qemu-img vmdk subformat)
# Prints both rates and the ratio; exits 1 when the ratio is below 2.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMGFUSE=${IMGFUSE:-$ROOT/build/imgfuse}
MIB=${1:-2048}
SUBFORMAT=${2:-monolithicSparse}
T=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-vmdk.XXXXXX")
QSD_PID=
cleanup() {
    fusermount3 -u "$T/mnt" 2>/dev/null || true
    [ -n "$QSD_PID" ] && kill "$QSD_PID" 2>/dev/null || true
    sleep 0.3
    rm -rf "$T"
}
trap cleanup EXIT

head -c "${MIB}M" /dev/urandom >"$T/src.raw"
qemu-img convert -f raw -O vmdk -o subformat="$SUBFORMAT" "$T/src.raw" "$T/disk.vmdk"
rm -f "$T/src.raw"
cat "$T"/disk*.vmdk >/dev/null                    # warm the page cache

# rate in MiB/s of one O_DIRECT sequential read of the mount
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
    "$IMGFUSE" -r -F vmdk "$T/disk.vmdk" "$T/mnt"
    ours+="$(rate) "
    fusermount3 -u "$T/mnt"
    sleep 0.5

    touch "$T/mnt"
    qemu-storage-daemon \
        --blockdev driver=file,node-name=f,filename="$T/disk.vmdk",read-only=on \
        --blockdev driver=vmdk,node-name=v,file=f,read-only=on \
        --export type=fuse,id=e,node-name=v,mountpoint="$T/mnt" >"$T/qsd.log" 2>&1 &
    QSD_PID=$!
    for _ in $(seq 200); do
        grep -q " $T/mnt fuse" /proc/mounts && break
        sleep 0.05
    done
    qsd+="$(rate) "
    # qsd does not exit when its export is unmounted (it spins): stop it
    kill "$QSD_PID" 2>/dev/null || true
    wait "$QSD_PID" 2>/dev/null || true
    fusermount3 -u "$T/mnt" 2>/dev/null || true
    QSD_PID=
done
a=$(echo "$ours" | best) b=$(echo "$qsd" | best)
ratio=$(echo "scale=2; $a / $b" | bc)
echo "vmdk $SUBFORMAT ${MIB} MiB sequential read, warm, O_DIRECT: imgfuse ${a} MiB/s, qsd ${b} MiB/s, ratio ${ratio}x (want >= 2)"
[ "$(echo "$ratio >= 2" | bc)" = 1 ]
