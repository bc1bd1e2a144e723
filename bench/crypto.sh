#!/bin/bash
# luks (aes-256-xts-plain64, qemu-img's defaults) decryption speed, best of
# 3 each, on an image of random data whose file is warm in the page cache:
#   convert    full sequential read through the mount into a raw file
#              against `qemu-img convert -O raw` of the same image into one
#              (want >= 1.5x on 2 cores)
#   odirect    the same read with O_DIRECT into /dev/null, next to
#              `cryptsetup benchmark`'s aes-xts 512-bit decryption figure
#              when the kernel crypto API answers (want >= 0.7x)
# usage: bench/crypto.sh [MiB]   (default 1024)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
MIB=${1:-1024}
bench_tmp crypto "${TMPDIR:-/var/tmp}"
printf 'bench passphrase' >"$T/pw"
SEC="secret,id=s,file=$T/pw"
OPTS="driver=luks,key-secret=s,file.filename=$T/disk.luks"

head -c "${MIB}M" /dev/urandom >"$T/src.raw"
qemu-img convert --object "$SEC" -f raw -O luks -o key-secret=s,iter-time=10 \
    "$T/src.raw" "$T/disk.luks"
rm -f "$T/src.raw"
cat "$T/disk.luks" >/dev/null

ours="" qemu="" direct=""
for run in 1 2 3; do
    "$IMGFUSE" -r --object "$SEC" -o key-secret=s "$T/disk.luks" "$T/mnt"
    ours+="$(mbps "$MIB" "$(secs dd if="$T/mnt" of="$T/out.raw" bs=1M status=none)") "
    rm -f "$T/out.raw"
    direct+="$(mbps "$MIB" "$(secs dd if="$T/mnt" of=/dev/null bs=1M iflag=direct status=none)") "
    umnt
    qemu+="$(mbps "$MIB" "$(secs qemu-img convert --object "$SEC" --image-opts "$OPTS" \
        -O raw "$T/out.raw")") "
    rm -f "$T/out.raw"
done
a=$(echo "$ours" | best) q=$(echo "$qemu" | best) d=$(echo "$direct" | best)
echo "convert ${MIB} MiB luks aes-256-xts: imgfuse ${a} MiB/s, qemu-img convert ${q} MiB/s; $(echo "scale=2; $a / $q" | bc)x"
cs=$(cryptsetup benchmark -c aes-xts -s 512 2>/dev/null | awk '/aes-xts/ { print $(NF-1) }' || true)
if [ -n "$cs" ]; then
    echo "odirect ${MIB} MiB: imgfuse ${d} MiB/s, cryptsetup benchmark aes-xts 512b decryption ${cs} MiB/s; $(echo "scale=2; $d / $cs" | bc)x"
else
    echo "odirect ${MIB} MiB: imgfuse ${d} MiB/s (cryptsetup benchmark: no kernel crypto API here)"
fi
