#!/bin/bash
# qed through imgfuse against qemu-storage-daemon's FUSE export (qsd), best
# of 3 each, with 64 KiB clusters (qemu-img's default):
#   seq-read     warm sequential read of a fully allocated image of random
#                data, O_DIRECT on the mount (want >= 2x qsd)
#   seq-write    sequential write of a new image (want >= 1.5x qsd); the
#                same dd into a plain file on the same disk is printed as
#                the ceiling the storage sets
# usage: bench/qed.sh [MiB]   (default 2048)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMGFUSE=${IMGFUSE:-$ROOT/build/imgfuse}
MIB=${1:-2048}
T=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-qed.XXXXXX")
QSD_PID=
cleanup() {
    fusermount3 -u "$T/mnt" 2>/dev/null || true
    [ -n "$QSD_PID" ] && kill "$QSD_PID" 2>/dev/null || true
    sleep 0.3
    rm -rf "$T"
}
trap cleanup EXIT

best() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -1; }
secs() { local t0; t0=$(date +%s.%N); "$@"; echo "$(date +%s.%N) - $t0" | bc; }
mbps() { echo "scale=1; $1 / ($2)" | bc; }

# unmount and wait until the mount is really gone
umnt() {
    fusermount3 -u "$T/mnt"
    for _ in $(seq 200); do
        grep -q " $T/mnt " /proc/mounts || return 0
        sleep 0.05
    done
    echo "bench: $T/mnt stays mounted" >&2; exit 1
}

qsd_mount() {   # IMAGE [rw]
    local ro=on
    [ "${2:-}" = rw ] && ro=off
    touch "$T/mnt"
    qemu-storage-daemon \
        --blockdev driver=file,node-name=f,filename="$1",read-only=$ro \
        --blockdev driver=qed,node-name=v,file=f,read-only=$ro \
        --export type=fuse,id=e,node-name=v,mountpoint="$T/mnt",writable=$([ $ro = on ] && echo off || echo on) \
        >"$T/qsd.log" 2>&1 &
    QSD_PID=$!
    for _ in $(seq 200); do
        grep -q " $T/mnt fuse " /proc/mounts && return 0
        sleep 0.05
    done
    cat "$T/qsd.log"; exit 1
}
qsd_umount() { umnt; kill "$QSD_PID" 2>/dev/null || true; wait "$QSD_PID" 2>/dev/null || true; QSD_PID=; }

seqread() { dd if="$T/mnt" of=/dev/null bs=1M iflag=direct status=none; }
seqwrite() { dd if="$T/src.raw" of="$T/mnt" bs=1M conv=notrunc,fsync status=none; }

head -c "${MIB}M" /dev/urandom >"$T/src.raw"
qemu-img convert -f raw -O qed "$T/src.raw" "$T/disk.qed"
cat "$T/disk.qed" "$T/src.raw" >/dev/null

ours="" qsd=""
for run in 1 2 3; do
    "$IMGFUSE" -r "$T/disk.qed" "$T/mnt"
    ours+="$(mbps "$MIB" "$(secs seqread)") "
    umnt
    qsd_mount "$T/disk.qed"
    qsd+="$(mbps "$MIB" "$(secs seqread)") "
    qsd_umount
done
a=$(echo "$ours" | best) q=$(echo "$qsd" | best)
echo "seq-read  ${MIB} MiB warm O_DIRECT: imgfuse ${a} MiB/s, qsd ${q} MiB/s; $(echo "scale=2; $a / $q" | bc)x"

ours="" qsd="" plain=""
for run in 1 2 3; do
    rm -f "$T/plain.raw"
    plain+="$(mbps "$MIB" "$(secs dd if="$T/src.raw" of="$T/plain.raw" bs=1M conv=fsync status=none)") "
    rm -f "$T/plain.raw" "$T/new.qed"
    "$IMGFUSE" --create "${MIB}M" -F qed "$T/new.qed" "$T/mnt"
    ours+="$(mbps "$MIB" "$(secs seqwrite)") "
    umnt
    rm -f "$T/new.qed"
    qemu-img create -q -f qed "$T/new.qed" "${MIB}M"
    qsd_mount "$T/new.qed" rw
    qsd+="$(mbps "$MIB" "$(secs seqwrite)") "
    qsd_umount
done
a=$(echo "$ours" | best) q=$(echo "$qsd" | best) p=$(echo "$plain" | best)
echo "seq-write ${MIB} MiB new image: imgfuse ${a} MiB/s, qsd ${q} MiB/s, plain file ${p} MiB/s; $(echo "scale=2; $a / $q" | bc)x qsd (ceiling $(echo "scale=2; $p / $q" | bc)x)"
