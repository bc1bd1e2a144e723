#!/bin/bash
# Images made by create_compressed_fs (V2, zlib) from random and zero data
# at 64 KiB, 256 KiB and 1 MiB blocks (zlib level 9), and with its 7-zip
# deflate (-L -1) and level 0 (stored deflate), read back equal to the
# source file (the independent oracle) and to qemu-img convert; unaligned
# reads and several readers at once give the same bytes. Blocks of zeroes
# are holes to SEEK_HOLE, data blocks never.
. "$(dirname "$0")/../lib.sh"
# the system python (it has python3-lz4), not a slower pyenv shim
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# 3.3 MB, not a multiple of any block size: random, zeros, random
src=$T/src.raw
{ head -c 1500000 /dev/urandom; head -c 1200000 /dev/zero
  head -c 600001 /dev/urandom; } >"$src"
len=$(stat -c %s "$src")

for case in 65536:9 262144:9 1048576:9 65536:-1 131072:0; do
    bs=${case%:*} level=${case#*:}
    img=$T/c$bs$level.cloop mnt=$T/mnt$bs$level
    create_compressed_fs -q -L $level -B $bs "$src" "$img" >/dev/null 2>&1 ||
        fail "create_compressed_fs -L $level -B $bs"
    touch "$mnt"
    mount_img -r "$img" "$mnt"
    size=$(stat -c %s "$mnt")
    expect_eq "$size" "$(( (len + bs - 1) / bs * bs ))" "size at -B $bs"
    cmp -n "$len" "$mnt" "$src" || fail "-B $bs: differs from the source"
    # the padding of the last block reads as zeroes
    expect_eq "$(tail -c +$((len + 1)) "$mnt" | tr -d '\0' | wc -c)" 0 \
        "-B $bs: padding"
    qemu-img convert -U -f cloop -O raw "$img" "$T/q.raw"
    cmp "$mnt" "$T/q.raw" || fail "-B $bs: differs from qemu-img"
    # holes (SEEK_HOLE) only where whole blocks of the source are zeroes
    # (qemu-img map calls every cloop block data); zlib level 9 finds all
    # of them, stored deflate (level 0) none
    seek_map "$mnt" >"$T/map"
    "$PY" - "$src" "$bs" "$level" "$size" "$T/map" <<'PY' || fail "-B $bs -L $level: holes"
import sys
src, bs, level, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
data = open(src, 'rb').read().ljust(size, b'\0')
zero = {k for k in range(size // bs) if not any(data[k * bs:(k + 1) * bs])}
holes, at = set(), 0
for line in open(sys.argv[5]):
    d, h = map(int, line.split())
    holes |= {k for k in range(at // bs, d // bs)}
    assert at % bs == 0 and d % bs == 0, (at, d)
    at = h
holes |= {k for k in range(at // bs, size // bs)}
assert holes <= zero, f"holes over data blocks: {sorted(holes - zero)}"
want = zero if level == "9" else set() if level == "0" else holes
assert holes == want, f"holes {sorted(holes)} != zero blocks {sorted(want)}"
print(f"  {len(holes)} of {size // bs} blocks are holes")
PY

    # unaligned reads across block boundaries, then readers in parallel
    "$PY" - "$mnt" "$src" "$bs" <<'PY' || fail "-B $bs: unaligned reads"
import os, random, sys
mnt, src, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
want = open(src, 'rb').read()
fd = os.open(mnt, os.O_RDONLY)
rnd = random.Random(bs)
for _ in range(300):
    off = rnd.randrange(len(want))
    n = rnd.choice([1, 511, 4097, bs - 1, bs + 3, 3 * bs + 17])
    got = os.pread(fd, n, off)
    exp = want[off:off + n]
    if got[:len(exp)] != exp:
        sys.exit('mismatch at %d+%d' % (off, n))
PY
    pids=()
    for k in 0 1 2 3; do
        (dd if="$mnt" bs=$((4096 + k * 12288)) iflag=fullblock status=none |
         sha256sum | cut -d' ' -f1 >"$T/par.$k") &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    want=$(sha "$T/q.raw")
    for k in 0 1 2 3; do
        expect_eq "$(cat "$T/par.$k")" "$want" "-B $bs: parallel reader $k"
    done
    unmount_img "$mnt"
    note "-B $bs -L $level ok"
done
