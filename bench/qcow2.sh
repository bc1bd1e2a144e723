#!/bin/bash
# qcow2 through imgfuse against qemu-storage-daemon's FUSE export (qsd) and
# qemu-img, best of 3 each, on a fully allocated image of random data with
# 64 KiB clusters:
#   seq-read     warm sequential read, O_DIRECT on the mount (want >= 2x qsd,
#                and >= 0.8x imgfuse reading the same data as a raw image)
#   rand-read    4 KiB random reads, 4 jobs (want >= 2x qsd)
#   cold-read    sequential read after dropping the page cache, O_DIRECT on
#                the mount, against reading the raw file of the same data
#                directly (want >= 0.8x)
#   seq-write    sequential write of a new image (want >= 1.5x qsd); the
#                same dd into a plain file on the same disk is printed as
#                the ceiling the storage sets
#   zlib/zstd    full read of a compressed image vs qemu-img convert -O raw
#                (want >= 1.3x)
# usage: bench/qcow2.sh [MiB]   (default 2048)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
MIB=${1:-2048}
bench_tmp qcow2 "${TMPDIR:-/var/tmp}"
randread() {
    fio --name=r --filename="$T/mnt" --rw=randread --bs=4k --numjobs=4 \
        --direct=1 --ioengine=psync --time_based --runtime=5 \
        --group_reporting --output-format=terse --terse-version=3 |
        awk -F';' '{print $8}'      # read IOPS
}

head -c "${MIB}M" /dev/urandom >"$T/src.raw"
qemu-img convert -f raw -O qcow2 "$T/src.raw" "$T/disk.qcow2"
cat "$T/disk.qcow2" "$T/src.raw" >/dev/null

ours="" raw="" qsd="" ours_r="" qsd_r=""
for run in 1 2 3; do
    "$IMGFUSE" -r "$T/disk.qcow2" "$T/mnt"
    ours+="$(mbps "$MIB" "$(secs seqread)") "
    ours_r+="$(randread) "
    umnt
    "$IMGFUSE" -r -F raw "$T/src.raw" "$T/mnt"
    raw+="$(mbps "$MIB" "$(secs seqread)") "
    umnt
    qsd_mount "$T/disk.qcow2" qcow2
    qsd+="$(mbps "$MIB" "$(secs seqread)") "
    qsd_r+="$(randread) "
    qsd_umount
done
a=$(echo "$ours" | best) r=$(echo "$raw" | best) q=$(echo "$qsd" | best)
echo "seq-read  ${MIB} MiB warm O_DIRECT: imgfuse ${a} MiB/s, raw via imgfuse ${r}, qsd ${q}; vs qsd $(echo "scale=2; $a / $q" | bc)x, vs raw $(echo "scale=2; $a / $r" | bc)x"
a=$(echo "$ours_r" | best) q=$(echo "$qsd_r" | best)
echo "rand-read 4k x4 jobs: imgfuse ${a} IOPS, qsd ${q} IOPS; $(echo "scale=2; $a / $q" | bc)x"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
ours="" rawfile="" qsd=""
for run in 1 2 3; do
    drop_caches
    "$IMGFUSE" -r "$T/disk.qcow2" "$T/mnt"
    ours+="$(mbps "$MIB" "$(secs seqread)") "
    umnt
    drop_caches
    rawfile+="$(mbps "$MIB" "$(secs dd if="$T/src.raw" of=/dev/null bs=1M status=none)") "
    drop_caches
    qsd_mount "$T/disk.qcow2" qcow2
    qsd+="$(mbps "$MIB" "$(secs seqread)") "
    qsd_umount
done
a=$(echo "$ours" | best) r=$(echo "$rawfile" | best) q=$(echo "$qsd" | best)
echo "cold-read ${MIB} MiB: imgfuse ${a} MiB/s, raw file read directly ${r}, qsd ${q}; vs raw file $(echo "scale=2; $a / $r" | bc)x, vs qsd $(echo "scale=2; $a / $q" | bc)x"
cat "$T/src.raw" >/dev/null

ours="" qsd="" plain=""
for run in 1 2 3; do
    rm -f "$T/plain.raw"
    plain+="$(mbps "$MIB" "$(secs dd if="$T/src.raw" of="$T/plain.raw" bs=1M conv=fsync status=none)") "
    rm -f "$T/plain.raw"
    rm -f "$T/new.qcow2"
    "$IMGFUSE" --create "${MIB}M" -F qcow2 "$T/new.qcow2" "$T/mnt"
    ours+="$(mbps "$MIB" "$(secs sh -c "dd if='$T/src.raw' of='$T/mnt' bs=1M conv=notrunc,fsync status=none")") "
    umnt
    rm -f "$T/new.qcow2"
    qemu-img create -q -f qcow2 "$T/new.qcow2" "${MIB}M"
    qsd_mount "$T/new.qcow2" qcow2 rw
    qsd+="$(mbps "$MIB" "$(secs sh -c "dd if='$T/src.raw' of='$T/mnt' bs=1M conv=notrunc,fsync status=none")") "
    qsd_umount
done
a=$(echo "$ours" | best) q=$(echo "$qsd" | best) p=$(echo "$plain" | best)
echo "seq-write ${MIB} MiB new image: imgfuse ${a} MiB/s, qsd ${q} MiB/s, plain file ${p} MiB/s; $(echo "scale=2; $a / $q" | bc)x qsd, $(echo "scale=2; $a / $p" | bc)x plain file (ceiling $(echo "scale=2; $p / $q" | bc)x)"

# compressible data: text-like, a few MiB per second of entropy
python3 - "$T/text.raw" "$MIB" <<'PY'
import random, sys
r = random.Random(1)
words = [r.randbytes(r.randint(2, 9)) for _ in range(5000)]
with open(sys.argv[1], 'wb') as f:
    for i in range(int(sys.argv[2]) * 16):
        f.write(b''.join(r.choice(words) for _ in range(12000))[:65536])
PY
for c in zlib zstd; do
    qemu-img convert -c -f raw -O qcow2 -o compression_type=$c "$T/text.raw" "$T/c.qcow2"
    cat "$T/c.qcow2" >/dev/null
    ours="" qi=""
    for run in 1 2 3; do
        "$IMGFUSE" -r "$T/c.qcow2" "$T/mnt"
        ours+="$(mbps "$MIB" "$(secs seqread)") "
        umnt
        qi+="$(mbps "$MIB" "$(secs qemu-img convert -O raw "$T/c.qcow2" "$T/out.raw")") "
        rm -f "$T/out.raw"
    done
    a=$(echo "$ours" | best) q=$(echo "$qi" | best)
    echo "$c full read: imgfuse ${a} MiB/s, qemu-img convert ${q} MiB/s; $(echo "scale=2; $a / $q" | bc)x"
done
