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
. "$(dirname "$0")/lib.sh"
MIB=${1:-2048}
bench_tmp qed "${TMPDIR:-/var/tmp}"
seqwrite() { dd if="$T/src.raw" of="$T/mnt" bs=1M conv=notrunc,fsync status=none; }

head -c "${MIB}M" /dev/urandom >"$T/src.raw"
qemu-img convert -f raw -O qed "$T/src.raw" "$T/disk.qed"
cat "$T/disk.qed" "$T/src.raw" >/dev/null

ours="" qsd=""
for run in 1 2 3; do
    "$IMGFUSE" -r "$T/disk.qed" "$T/mnt"
    ours+="$(mbps "$MIB" "$(secs seqread)") "
    umnt
    qsd_mount "$T/disk.qed" qed
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
    qsd_mount "$T/new.qed" qed rw
    qsd+="$(mbps "$MIB" "$(secs seqwrite)") "
    qsd_umount
done
a=$(echo "$ours" | best) q=$(echo "$qsd" | best) p=$(echo "$plain" | best)
echo "seq-write ${MIB} MiB new image: imgfuse ${a} MiB/s, qsd ${q} MiB/s, plain file ${p} MiB/s; $(echo "scale=2; $a / $q" | bc)x qsd (ceiling $(echo "scale=2; $p / $q" | bc)x)"
