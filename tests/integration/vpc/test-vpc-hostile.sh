#!/bin/bash
# Corrupt and hostile VHDs fail with a clear message, never a crash or a
# hang: the fuzzed afl5.img, truncated files, tables and blocks beyond the
# end, absurd sizes, bad block sizes, unknown disk types, parent loops.
. "$(dirname "$0")/../lib.sh"

expect_error "$DATA/vpc/afl5.img" "max table entries too large (1073741825"

zcat "$DATA/vpc/ext2.vhd.gz" >"$T/good.vhd"
size=$(stat -c %s "$T/good.vhd")

# patch NAME PYTHON: a copy of good.vhd changed by a python snippet with
# d (bytearray of the file), ft/dh (footer/dynamic header offsets), be32/be64
# writers and fix() to recompute both checksums
patch() {
    python3 - "$T/good.vhd" "$T/$1.vhd" "$2" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
ft, dh = len(d) - 512, 512
def be32(o, v): d[o:o + 4] = struct.pack('>I', v)
def be64(o, v): d[o:o + 8] = struct.pack('>Q', v)
def fix():
    for base, size, c in ((ft, 512, 64), (0, 512, 64), (dh, 1024, 36)):
        d[base + c:base + c + 4] = b'\0' * 4
        s = sum(d[base:base + size])
        d[base + c:base + c + 4] = struct.pack('>I', ~s & 0xffffffff)
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
PY
}

head -c $((size / 2)) "$T/good.vhd" >"$T/truncated.vhd"
expect_error "$T/truncated.vhd" "beyond the end of the file"
head -c 300 "$T/good.vhd" >"$T/tiny.vhd"
expect_error "$T/tiny.vhd" "too small to be a vhd" -F vpc

patch bat-beyond 'be32(1536, 0x7ffffff0)'
expect_error "$T/bat-beyond.vhd" "block 0 at offset .* lies beyond the end of the file"
patch table-beyond 'be64(dh + 16, 1 << 50); fix()'
expect_error "$T/table-beyond.vhd" "block allocation table .* lies beyond the end"
patch block-size 'be32(dh + 32, 3000); fix()'
expect_error "$T/block-size.vhd" "invalid vhd block size 3000"
patch block-zero 'be32(dh + 32, 0); fix()'
expect_error "$T/block-zero.vhd" "invalid vhd block size 0"
patch bat-small 'be32(dh + 28, 1); fix()'
expect_error "$T/bat-small.vhd" "block allocation table too small"
patch disk-type 'be32(ft + 60, 7); be32(60, 7); fix()'
expect_error "$T/disk-type.vhd" "disk type 7 is not supported"
patch huge 'd[ft + 28:ft + 32] = d[28:32] = b"win "; be64(ft + 48, 1 << 60); be64(48, 1 << 60); fix()'
expect_error "$T/huge.vhd" "larger than a vhd can be"
patch no-cxsparse 'd[dh:dh + 8] = b"garbage!"'
expect_error "$T/no-cxsparse.vhd" "no dynamic disk header"
patch dyn-beyond 'be64(ft + 16, 1 << 40); be64(16, 1 << 40); fix()'
expect_error "$T/dyn-beyond.vhd" "dynamic disk header offset .* beyond the end"
# a stale checksum is accepted read-only only when the fields agree
# (test-vpc-footer-checksum.sh): here one does not
patch bad-footer-sum 'be32(ft + 12, 0x00020000); be32(12, 0x00020000)'
expect_error "$T/bad-footer-sum.vhd" "footer checksum mismatch .* footer version is not 1.0"
patch bad-dyn-sum 'be32(dh + 24, 0x00020000)'
expect_error "$T/bad-dyn-sum.vhd" "dynamic header checksum mismatch .* dynamic header version"

# a differencing disk whose parent is itself
qemu-img create -q -f vpc "$T/self.vhd" 4M
cp "$T/self.vhd" "$T/self-parent.vhd"
python3 "$(dirname "$0")/mkdiff.py" "$T/self.vhd" "$T/self-parent.vhd" self.vhd self.vhd
expect_error "$T/self.vhd" "loop"
# two disks that are each other's parent
qemu-img create -q -f vpc "$T/a.vhd" 4M
qemu-img create -q -f vpc "$T/b.vhd" 4M
cp "$T/a.vhd" "$T/a0.vhd"
cp "$T/b.vhd" "$T/b0.vhd"
python3 "$(dirname "$0")/mkdiff.py" "$T/a.vhd" "$T/b0.vhd" b.vhd b.vhd
python3 "$(dirname "$0")/mkdiff.py" "$T/b.vhd" "$T/a0.vhd" a.vhd a.vhd
expect_error "$T/a.vhd" "loop"

# random damage: never a crash or a hang, whatever the message
python3 - "$T/good.vhd" "$T/fz" <<'PY'
import random, sys
d0 = open(sys.argv[1], 'rb').read()
rnd = random.Random(4)
for i in range(60):
    d = bytearray(d0)
    for _ in range(rnd.randint(1, 12)):
        at = rnd.choice([rnd.randrange(2048), len(d) - 1 - rnd.randrange(512)])
        d[at] = rnd.randrange(256)
    open("%s%02d.vhd" % (sys.argv[2], i), 'wb').write(d)
PY
info_survives vpc "$T"/fz*.vhd
note "60 damaged variants: no crash"

# imgfuse check: overlapping blocks are corruption; a stale footer copy at
# the start is repaired from the end with -r all
qemu-img create -q -f vpc "$T/ck.vhd" 8M
qemu-io -c "write -P 1 0 3M" "$T/ck.vhd" >/dev/null
"$IMGFUSE" check "$T/ck.vhd" >/dev/null 2>&1 || fail "a clean vhd fails check"
python3 - "$T/ck.vhd" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[100] ^= 1                                   # the start copy only
b0 = struct.unpack('>I', d[1536:1540])[0]
d[1540:1544] = struct.pack('>I', b0 + 8)      # block 1 inside block 0
open(sys.argv[1], 'wb').write(d)
PY
rc=0
"$IMGFUSE" check "$T/ck.vhd" >"$T/out" 2>&1 || rc=$?
expect_eq "$rc" 2 "imgfuse check exit status"
grep -q "overlaps another block" "$T/out" || fail "check output: $(cat "$T/out")"
grep -q "footer copy at the start differs" "$T/out" || fail "check output: $(cat "$T/out")"
"$IMGFUSE" check -r all "$T/ck.vhd" >/dev/null 2>&1 || true
cmp -s <(head -c 512 "$T/ck.vhd") <(tail -c 512 "$T/ck.vhd") ||
    fail "check -r all did not repair the footer copy"
note "check: ok"
