#!/bin/bash
# Corrupt and hostile VDIs fail with a clear message, never a crash or a
# hang: truncated files, maps and blocks beyond the end, absurd counts and
# sizes, bad block sizes, unsupported versions and image types.
. "$(dirname "$0")/../lib.sh"

zcat "$DATA/vdi/basic.vdi.gz" >"$T/good.vdi"
size=$(stat -c %s "$T/good.vdi")

patch() {
    python3 - "$T/good.vdi" "$T/$1.vdi" "$2" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
def le32(o, v): d[o:o + 4] = struct.pack('<I', v)
def le64(o, v): d[o:o + 8] = struct.pack('<Q', v)
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
PY
}

head -c $((size / 2)) "$T/good.vdi" >"$T/truncated.vdi"
expect_error "$T/truncated.vdi" "beyond the end of the file"
head -c 100 "$T/good.vdi" >"$T/tiny.vdi"
expect_error "$T/tiny.vdi" "too small to be a vdi" -F vdi
patch signature 'le32(0x40, 0x12345678)'
expect_error "$T/signature.vdi" "not a vdi image" -F vdi
patch version 'le32(0x44, 0)'
expect_error "$T/version.vdi" "vdi version 0.0 is not supported"
patch diff 'le32(0x4c, 4)'
expect_error "$T/diff.vdi" "differencing images are not supported"
patch blocks 'le32(0x180, 0xffffffff)'
expect_error "$T/blocks.vdi" "block count 4294967295 is too large"
patch disk-size 'le64(0x170, 1 << 50)'
expect_error "$T/disk-size.vdi" "disk size .* is larger than its"
patch block-size 'le32(0x178, 1000)'
expect_error "$T/block-size.vdi" "invalid vdi block size 1000"
patch block-zero 'le32(0x178, 0)'
expect_error "$T/block-zero.vdi" "invalid vdi block size 0"
patch bmap-beyond 'le32(0x154, 0xfffffe00)'
expect_error "$T/bmap-beyond.vdi" "block map .* beyond the end"
patch data-overlap 'le32(0x158, 0x200)'
expect_error "$T/data-overlap.vdi" "data offset 512 overlaps the block map"
patch entry-beyond 'o = struct.unpack("<I", d[0x154:0x158])[0]; le32(o + 4, 9)'
expect_error "$T/entry-beyond.vdi" "block 1 points to data block 9"
patch sector 'le32(0x168, 4096)'
expect_error "$T/sector.vdi" "sector size 4096 is not supported"
patch allocated 'le32(0x184, 1000)'
expect_error "$T/allocated.vdi" "1000 blocks are allocated out of 10"

python3 - "$T/good.vdi" "$T/fz" <<'PY'
import random, sys
d0 = open(sys.argv[1], 'rb').read()
rnd = random.Random(9)
for i in range(60):
    d = bytearray(d0)
    for _ in range(rnd.randint(1, 12)):
        d[rnd.randrange(0x400)] = rnd.randrange(256)
    open("%s%02d.vdi" % (sys.argv[2], i), 'wb').write(d)
PY
info_survives vdi "$T"/fz*.vdi
note "60 damaged variants: no crash"

# imgfuse check: a header count that disagrees with the map and unused
# blocks at the end are leaks that -r leaks repairs, to qemu-img's liking
patch miscount 'le32(0x184, 3); d.extend(bytes(3 << 20))'
rc=0
"$IMGFUSE" check "$T/miscount.vdi" >"$T/out" 2>&1 || rc=$?
expect_eq "$rc" 3 "imgfuse check exit status for leaks"
grep -q "leaked" "$T/out" || fail "check output: $(cat "$T/out")"
qemu-img check "$T/miscount.vdi" >/dev/null 2>&1 && fail "qemu-img check found no error"
"$IMGFUSE" check -r leaks "$T/miscount.vdi" >/dev/null 2>&1 ||
    fail "imgfuse check -r leaks failed"
"$IMGFUSE" check "$T/miscount.vdi" >/dev/null 2>&1 || fail "leaks left after repair"
qemu-img check "$T/miscount.vdi" >/dev/null || fail "qemu-img check after repair"
expect_eq "$(stat -c %s "$T/miscount.vdi")" "$size" "file cut back to its blocks"
# two blocks sharing data is corruption
patch shared 'o = struct.unpack("<I", d[0x154:0x158])[0]; d[o + 8:o + 12] = d[o + 4:o + 8]'
rc=0
"$IMGFUSE" check "$T/shared.vdi" >"$T/out" 2>&1 || rc=$?
expect_eq "$rc" 2 "imgfuse check exit status for a shared block"
note "check: ok"
