#!/bin/bash
# Sequential read of a zlib (UDZO-like) dmg through the mount, against
# `qemu-img convert -O raw` of the same file (the issue asks for >= 1.5x).
# usage: bench/dmg-zlib.sh [MiB]   (default 512; needs /dev/shm for qemu-img)
# Prints both times and the ratio; exits 1 when the ratio is below 1.5.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMGFUSE=${IMGFUSE:-$ROOT/build/imgfuse}
MIB=${1:-512}
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-dmg.XXXXXX")
OUT=$(mktemp -d /dev/shm/bench-dmg.XXXXXX)
cleanup() {
    fusermount3 -u "$T/mnt" 2>/dev/null || true
    rm -rf "$T" "$OUT"
}
trap cleanup EXIT

python3 "$ROOT/scripts/mkimage-dmg.py" --big-zlib "$MIB" "$T/big.dmg"
cat "$T/big.dmg" >/dev/null                       # warm the page cache

now() { date +%s.%N; }
best_qemu=999999 best_ours=999999
for run in 1 2 3; do
    t0=$(now)
    qemu-img convert -U -f dmg -O raw "$T/big.dmg" "$OUT/out.raw" 2>/dev/null
    t1=$(now)
    rm -f "$OUT/out.raw"
    q=$(echo "$t1 - $t0" | bc)
    best_qemu=$(echo "if ($q < $best_qemu) $q else $best_qemu" | bc)

    "$IMGFUSE" -r -F dmg "$T/big.dmg" "$T/mnt"
    t0=$(now)
    dd if="$T/mnt" of=/dev/null bs=1M iflag=direct status=none
    t1=$(now)
    fusermount3 -u "$T/mnt"
    o=$(echo "$t1 - $t0" | bc)
    best_ours=$(echo "if ($o < $best_ours) $o else $best_ours" | bc)
done
ratio=$(echo "scale=2; $best_qemu / $best_ours" | bc)
echo "dmg zlib ${MIB} MiB: qemu-img convert ${best_qemu}s, imgfuse read ${best_ours}s, ratio ${ratio}x (want >= 1.5)"
[ "$(echo "$ratio >= 1.5" | bc)" = 1 ]
