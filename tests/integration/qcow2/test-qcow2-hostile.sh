#!/bin/bash
# Hostile and damaged qcow2 images: a clear message naming the problem, no
# crash, no hang. Open-time damage fails the mount; damage found while
# reading (an L2 table or a compressed cluster beyond the end, garbage
# entries) fails the read with EIO and the mount stays up.
. "$(dirname "$0")/../lib.sh"

qemu-img create -q -f qcow2 "$T/good.qcow2" 16M
qemu-io -f qcow2 -c "write -P 0x42 0 2M" "$T/good.qcow2" >/dev/null
qemu-img convert -q -c -f qcow2 -O qcow2 "$T/good.qcow2" "$T/comp.qcow2"

# patch SRC DST 'python statements on bytearray d'
patch() {
    python3 - "$1" "$2" "$3" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
def be32(o, v): d[o:o + 4] = struct.pack('>I', v)
def be64(o, v): d[o:o + 8] = struct.pack('>Q', v)
def rd64(o): return struct.unpack('>Q', d[o:o + 8])[0]
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
PY
}

expect_open_error() {
    local img=$1 pattern=$2 rc=0 mnt=$T/mnt-err.$RANDOM
    shift 2
    timeout 20 "$IMGFUSE" "$@" "$img" "$mnt" 2>"$T/err" || rc=$?
    is_mounted "$mnt" && { fusermount3 -u "$mnt"; fail "$img mounted"; }
    [ $rc -ne 0 ] || fail "$(basename "$img") mounted; expected: $pattern"
    [ $rc -lt 124 ] || fail "$(basename "$img"): rc $rc (crash or hang)"
    grep -q -- "$pattern" "$T/err" ||
        fail "$(basename "$img"): message '$(cat "$T/err")' lacks '$pattern'"
    note "$(basename "$img"): $(head -1 "$T/err")"
}

# expect_read_error IMG: mounts, reading fails with EIO, the daemon survives
expect_read_error() {
    local img=$1 mnt=$T/mnt-rd.$RANDOM
    mount_img -r "$img" "$mnt"
    if timeout 20 dd if="$mnt" of=/dev/null bs=1M status=none 2>"$T/err"; then
        fail "$(basename "$img"): read succeeded"
    fi
    grep -q "Input/output error" "$T/err" || fail "$(basename "$img"): $(cat "$T/err")"
    is_mounted "$mnt" || fail "$(basename "$img"): daemon died"
    unmount_img "$mnt"
    note "$(basename "$img"): read fails with EIO"
}

g=$T/good.qcow2
head -c 50 "$g" >"$T/short.qcow2"
expect_open_error "$T/short.qcow2" "too short" -r -F qcow2
patch "$g" "$T/l1far.qcow2" 'be64(40, 1 << 50)'
expect_open_error "$T/l1far.qcow2" "L1 table" -r
patch "$g" "$T/rtfar.qcow2" 'be64(48, 1 << 40)'
expect_open_error "$T/rtfar.qcow2" "refcount table" -r
patch "$g" "$T/rtsize.qcow2" 'be32(56, 0x7fffffff)'
expect_open_error "$T/rtsize.qcow2" "refcount table" -r
patch "$g" "$T/huge.qcow2" 'be64(24, 1 << 63)'
expect_open_error "$T/huge.qcow2" "virtual size" -r
patch "$g" "$T/l1big.qcow2" 'be32(36, 0xffffffff)'
expect_open_error "$T/l1big.qcow2" "L1 table too large" -r
patch "$g" "$T/cbits.qcow2" 'be32(20, 30)'
expect_open_error "$T/cbits.qcow2" "cluster size" -r
patch "$g" "$T/rorder.qcow2" 'be32(96, 7)'
expect_open_error "$T/rorder.qcow2" "refcount width" -r
patch "$g" "$T/hlen.qcow2" 'be32(100, 0x7ffffff8)'
expect_open_error "$T/hlen.qcow2" "header length" -r
patch "$g" "$T/ver.qcow2" 'be32(4, 9)'
expect_open_error "$T/ver.qcow2" "version 9" -r -F qcow2
patch "$g" "$T/snaps.qcow2" 'be32(60, 0x10000000)'
expect_open_error "$T/snaps.qcow2" "too many snapshots" -r
patch "$g" "$T/snaptrunc.qcow2" 'be32(60, 5); be64(64, len(d) - 65536)'
expect_open_error "$T/snaptrunc.qcow2" "snapshot" -r
patch "$g" "$T/extlen.qcow2" '
o = struct.unpack(">I", d[100:104])[0]
be32(o + 4, 0xfffffff0)'
expect_open_error "$T/extlen.qcow2" "header extension" -r
patch "$g" "$T/bname.qcow2" 'be64(8, 0xff00); be32(16, 4000)'
expect_open_error "$T/bname.qcow2" "backing file name" -r
patch "$g" "$T/enc.qcow2" 'be32(32, 2)'
# crypt_method 2 (luks) without its crypt header extension: damaged, said so
expect_open_error "$T/enc.qcow2" "no encryption header extension" -r
# an unknown incompatible feature, named in the feature table
patch "$g" "$T/feat.qcow2" '
be64(72, rd64(72) | (1 << 40))
o = struct.unpack(">I", d[100:104])[0]
while struct.unpack(">I", d[o:o + 4])[0] != 0x6803f857:
    o += 8 + (struct.unpack(">I", d[o + 4:o + 8])[0] + 7) // 8 * 8
d[o + 8:o + 10] = bytes([0, 40]); d[o + 10:o + 56] = b"time travel".ljust(46, b"\0")'
expect_open_error "$T/feat.qcow2" "does not know: time travel" -r
# the corrupt bit: read-write refused, read-only fine
patch "$g" "$T/corrupt.qcow2" 'be64(72, rd64(72) | 2)'
expect_open_error "$T/corrupt.qcow2" "marked corrupt"
mount_img -r "$T/corrupt.qcow2" "$T/ro.raw"
unmount_img "$T/ro.raw"
note "corrupt.qcow2: read-only mount works"

# backing loops: self, and a <-> b
qemu-img create -q -f qcow2 -b self.qcow2 -F qcow2 -u "$T/self.qcow2" 16M
expect_open_error "$T/self.qcow2" "loop" -r
qemu-img create -q -f qcow2 -b b.qcow2 -F qcow2 -u "$T/a.qcow2" 16M
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 -u "$T/b.qcow2" 16M
expect_open_error "$T/a.qcow2" "loop" -r

# damage found while reading
l1=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(48); print(struct.unpack(">Q", d[40:48])[0])' "$g")
patch "$g" "$T/l2far.qcow2" "be64($l1, (1 << 45) | (1 << 63))"
expect_read_error "$T/l2far.qcow2"
patch "$g" "$T/l2self.qcow2" "be64($l1, (1 << 63) | 0)"
patch "$g" "$T/l2hdr.qcow2" "be64($l1, (1 << 63) | 65536)"
mount_img -r "$T/l2hdr.qcow2" "$T/hdr.raw"
timeout 20 dd if="$T/hdr.raw" of=/dev/null bs=1M status=none 2>/dev/null || true
is_mounted "$T/hdr.raw" || fail "l2hdr: daemon died"
unmount_img "$T/hdr.raw"
note "l2hdr.qcow2 (L2 table = refcount table): no crash"
cl1=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(48); print(struct.unpack(">Q", d[40:48])[0])' "$T/comp.qcow2")
patch "$T/comp.qcow2" "$T/compbad.qcow2" '
l2 = rd64('"$cl1"') & 0x00fffffffffffe00
e = rd64(l2)
host = e & ((1 << 54) - 1)
d[host:host + 64] = b"\xff" * 64'
expect_read_error "$T/compbad.qcow2"
patch "$T/comp.qcow2" "$T/compfar.qcow2" '
l2 = rd64('"$cl1"') & 0x00fffffffffffe00
be64(l2, (1 << 62) | (1 << 50))'
expect_read_error "$T/compfar.qcow2"

# a data cluster entry pointing at the L1 table: writes there are refused,
# the L1 table survives
patch "$g" "$T/overlap.qcow2" '
l1 = rd64(40)
l2 = rd64(l1) & 0x00fffffffffffe00
be64(l2, (1 << 63) | (l1 & ~0xffff))'
cp "$T/overlap.qcow2" "$T/overlap.orig"
mount_img "$T/overlap.qcow2" "$T/ov.raw"
if dd if=/dev/zero of="$T/ov.raw" bs=4k count=1 conv=notrunc,fsync status=none 2>"$T/err"; then
    fail "overlap: write into the L1 table accepted"
fi
is_mounted "$T/ov.raw" || fail "overlap: daemon died"
unmount_img "$T/ov.raw"
l1now=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); o=struct.unpack(">Q",d[40:48])[0]; print(d[o:o+8].hex())' "$T/overlap.qcow2")
l1was=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); o=struct.unpack(">Q",d[40:48])[0]; print(d[o:o+8].hex())' "$T/overlap.orig")
expect_eq "$l1now" "$l1was" "overlap: L1 table"
note "overlap.qcow2: write into metadata refused"
