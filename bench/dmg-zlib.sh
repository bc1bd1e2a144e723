#!/bin/bash
# Sequential read of a zlib (UDZO-like) dmg through the mount, against
# `qemu-img convert -O raw` of the same file (the issue asks for >= 1.5x).
# usage: bench/dmg-zlib.sh [MiB]   (default 512; needs /dev/shm for qemu-img)
# Prints both times and the ratio; exits 1 when the ratio is below 1.5.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
MIB=${1:-512}
bench_tmp dmg "${TMPDIR:-/tmp}"
OUT=$(mktemp -d /dev/shm/bench-dmg.XXXXXX)

python3 "$ROOT/scripts/mkimage-dmg.py" --big-zlib "$MIB" "$T/big.dmg"
cat "$T/big.dmg" >/dev/null                       # warm the page cache

convert_vs_read dmg "$T/big.dmg"
ratio=$(echo "scale=2; $best_qemu / $best_ours" | bc)
echo "dmg zlib ${MIB} MiB: qemu-img convert ${best_qemu}s, imgfuse read ${best_ours}s, ratio ${ratio}x (want >= 1.5)"
[ "$(echo "$ratio >= 1.5" | bc)" = 1 ]
