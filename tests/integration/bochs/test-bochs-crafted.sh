#!/bin/bash
# No tool writes data into a bochs image sector by sector (qemu-img cannot
# write bochs; bximage converts whole extents), so bochs.py builds growing
# redologs from the header layout: header versions 1 and 2, extent sizes
# from 512 bytes to 64 KiB, free extents, shuffled slots, partly written
# extents whose unwritten sectors hold garbage (they read as zeroes), disks
# that end inside an extent. Each reads as bochs.py's expected content and
# as qemu-img convert -f bochs reads it (the independent oracle), and
# SEEK_DATA / SEEK_HOLE follow the bitmaps.
. "$(dirname "$0")/../lib.sh"
PY=$(dirname "$0")/bochs.py

mkdir -p "$T/img" "$T/m" "$T/want"
#        name         version extent disk     seed
while read -r name v extent disk seed; do
    python3 "$PY" make "$T/img/$name.bochs" "$T/want/$name.raw" "$v" "$extent" "$disk" "$seed"
done <<'EOF2'
v1-4k         1 4096   300000   1
v2-4k         2 4096   300000   2
v1-512        1 512    70000    3
v2-64k        2 65536  1050000  4
v2-32k-odd    2 32768  500100   5
v1-8k-exact   1 8192   262144   6
EOF2

mount_img -r "$T"/img/*.bochs "$T/m"
for f in "$T"/img/*.bochs; do
    name=$(basename "$f" .bochs)
    want=$(sha "$T/want/$name.raw")
    expect_eq "$(stat -c %s "$T/m/$name.raw")" "$(stat -c %s "$T/want/$name.raw")" "$name size"
    expect_eq "$(sha "$T/m/$name.raw")" "$want" "$name content"
    expect_eq "$(qemu_raw_sha "$f" bochs)" "$want" "$name: qemu agrees with bochs.py"
    expect_eq "$(seek_map "$T/m/$name.raw")" "$(python3 "$PY" map "$f")" "$name data runs"
    [ -n "$(seek_map "$T/m/$name.raw")" ] || fail "$name: no data runs"
    note "$name: ok"
done
# reads that start and end inside sectors and cross extents
python3 - "$T/m/v2-4k.raw" "$T/want/v2-4k.raw" <<'PY'
import random, sys
a, b = open(sys.argv[1], 'rb'), open(sys.argv[2], 'rb')
size = b.seek(0, 2)
rnd = random.Random(7)
for _ in range(300):
    off = rnd.randrange(size)
    n = rnd.randrange(1, 20000)
    a.seek(off); b.seek(off)
    if a.read(n) != b.read(n):
        sys.exit("read of %d at %d differs" % (n, off))
PY
note "unaligned reads: ok"
unmount_img "$T/m"
