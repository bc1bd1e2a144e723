#!/bin/bash
# Full read of a zlib-compressed qcow2 (qemu-img convert -c, 64 KiB
# clusters) of compressible text-like data: an ordinary reader, `dd bs=1M`
# of the mounted file through the page cache with the kernel's default
# readahead, against `qemu-img convert -O raw` of the same image into a file
# in the same directory (want >= 1.6x). Rounds alternate the two, best of
# each; the load average is printed, since another load skews the ratio.
# With BASE=/path/to/older/imgfuse the older binary is measured in the same
# rounds too (before/after).
# usage: bench/qcow2-zlib.sh [MiB] [rounds]   (defaults 1024, 3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
MIB=${1:-1024}
ROUNDS=${2:-3}
bench_tmp qcow2-zlib "${TMPDIR:-/var/tmp}"
touch "$T/mnt"

python3 - "$T/text.raw" "$MIB" <<'PY'
import random, sys
r = random.Random(1)
words = [r.randbytes(r.randint(2, 9)) for _ in range(5000)]
with open(sys.argv[1], 'wb') as f:
    for i in range(int(sys.argv[2]) * 16):
        f.write(b''.join(r.choice(words) for _ in range(13000))[:65536])
PY
qemu-img convert -c -f raw -O qcow2 -o compression_type=zlib \
    "$T/text.raw" "$T/c.qcow2"
rm -f "$T/text.raw"
cat "$T/c.qcow2" >/dev/null
echo "image: $(du -m "$T/c.qcow2" | cut -f1) MiB compressed, ${MIB} MiB raw"

dd_read() {
    "$1" -r "$T/c.qcow2" "$T/mnt"
    mbps "$MIB" "$(secs dd if="$T/mnt" of=/dev/null bs=1M status=none)"
    umnt
}

ours="" base="" qi=""
for run in $(seq "$ROUNDS"); do
    ours+="$(dd_read "$IMGFUSE") "
    if [ -n "${BASE:-}" ]; then
        base+="$(dd_read "$BASE") "
    fi
    qi+="$(mbps "$MIB" "$(secs qemu-img convert -O raw "$T/c.qcow2" "$T/out.raw")") "
    rm -f "$T/out.raw"
    echo "round $run: imgfuse $ours| base ${base:-none}| qemu-img $qi| load $(cut -d' ' -f1-3 /proc/loadavg)"
done
a=$(echo "$ours" | best) q=$(echo "$qi" | best)
echo "zlib full read (dd bs=1M, default readahead), best of $ROUNDS: imgfuse ${a} MiB/s, qemu-img convert ${q} MiB/s; $(echo "scale=2; $a / $q" | bc)x"
if [ -n "${BASE:-}" ]; then
    b=$(echo "$base" | best)
    echo "  base ${b} MiB/s ($(echo "scale=2; $b / $q" | bc)x qemu-img); now $(echo "scale=2; $a / $b" | bc)x base"
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
