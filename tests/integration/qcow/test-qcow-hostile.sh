#!/bin/bash
# Corrupt and hostile qcow images fail with a clear message, never a crash
# or a hang: truncated files, L1 tables beyond the end, absurd sizes,
# cluster and L2 sizes out of range, other versions, encryption (AES is
# refused, not yet supported), long backing names; and clusters pointing
# beyond the file or holding garbage fail the read (EIO), not the daemon.
. "$(dirname "$0")/common.sh"

zcat "$DATA/qcow/gen-qcow1.qcow.gz" >"$T/good.qcow"

patch() {
    python3 - "$T/good.qcow" "$T/$1.qcow" "$2" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
def be32(o, v): d[o:o + 4] = struct.pack('>I', v)
def be64(o, v): d[o:o + 8] = struct.pack('>Q', v)
def l2(i): return struct.unpack('>Q', d[48 + 8 * i:56 + 8 * i])[0]
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
PY
}

# AES without its secret: refused at open, for info and for a mount alike,
# naming the option that gives it
qemu-img create -q -f qcow --object secret,id=s0,data=pw \
    -o encrypt.format=aes,encrypt.key-secret=s0 "$T/aes.qcow" 4M
expect_error "$T/aes.qcow" "no secret is given: use --object secret,id=ID,file=PATH with encrypt.key-secret=ID"
expect_fail_within 20 "$IMGFUSE" "$T/aes.qcow" "$T/aes-mnt"
expect_err "aes.qcow: the image is encrypted and no secret is given"
note "aes.qcow mount without a secret: refused"

head -c 40 "$T/good.qcow" >"$T/tiny.qcow"
expect_error "$T/tiny.qcow" "too small to be a qcow" -F qcow
head -c 60 "$T/good.qcow" >"$T/cut-l1.qcow"
expect_error "$T/cut-l1.qcow" "L1 table .* beyond the end of the file"
patch l1-beyond 'be64(40, 1 << 60)'
expect_error "$T/l1-beyond.qcow" "L1 table .* beyond the end of the file"
patch l1-header 'be64(40, 8)'
expect_error "$T/l1-header.qcow" "L1 table .* overlaps the header"
patch huge 'be64(24, 1 << 44)'
expect_error "$T/huge.qcow" "L1 table .* beyond the end of the file"
patch huger 'be64(24, (1 << 64) - 1)'
expect_error "$T/huger.qcow" "qcow image size .* is too large"
patch l1-entries 'be64(24, 1 << 59); d[32] = 9; d[33] = 6'
expect_error "$T/l1-entries.qcow" "L1 table of .* entries is too large"
patch empty 'be64(24, 1)'
expect_error "$T/empty.qcow" "qcow image size 1 is too small"
patch cluster-big 'd[32] = 17'
expect_error "$T/cluster-big.qcow" "invalid qcow cluster_bits 17"
patch cluster-small 'd[32] = 8'
expect_error "$T/cluster-small.qcow" "invalid qcow cluster_bits 8"
patch cluster-255 'd[32] = 255'
expect_error "$T/cluster-255.qcow" "invalid qcow cluster_bits 255"
patch l2-big 'd[33] = 14'
expect_error "$T/l2-big.qcow" "invalid qcow l2_bits 14"
patch version 'be32(4, 7)'
expect_error "$T/version.qcow" "qcow version 7 is not supported" -F qcow
patch crypt 'be32(36, 2)'
expect_error "$T/crypt.qcow" "unknown qcow encryption method 2"
patch backing-long 'be64(8, 48); be32(16, 5000)'
expect_error "$T/backing-long.qcow" "backing file name of 5000 bytes is too long"
patch backing-beyond 'be64(8, 1 << 40); be32(16, 10)'
expect_error "$T/backing-beyond.qcow" "backing file name lies beyond"

# damage behind the header: the read fails, the mount lives on
patch l2-beyond 'be64(48, 1 << 50)'
patch data-beyond 'o = l2(0); be64(o + 8 * 200, 1 << 45)'
patch comp-garbage 'o = l2(0); be64(o + 8 * 5, 1 << 63 | 300 << 51 | 0)'
patch comp-beyond 'o = l2(0); be64(o + 8 * 6, 1 << 63 | 300 << 51 | (1 << 50))'
mkdir -p "$T/bad" "$T/m"
cp "$T"/l2-beyond.qcow "$T"/data-beyond.qcow "$T"/comp-garbage.qcow \
    "$T"/comp-beyond.qcow "$T/bad/"
mount_img -r "$T"/bad/*.qcow "$T/m"
for name in l2-beyond data-beyond comp-garbage comp-beyond; do
    if cat "$T/m/$name.raw" >/dev/null 2>"$T/err"; then
        fail "$name: reading the damaged image succeeded"
    fi
    grep -q "Input/output error" "$T/err" || fail "$name: $(cat "$T/err")"
    note "$name: read fails with EIO"
done
expect_eq "$(sha "$T/m/comp-garbage.raw" 2>/dev/null || echo failed)" failed \
    "comp-garbage twice"
# the rest of the image still reads as qemu reads it
qemu-img convert -f qcow -O raw "$T/good.qcow" "$T/good.raw"
cmp -s <(tail -c +2097153 "$T/m/l2-beyond.raw") <(tail -c +2097153 "$T/good.raw") ||
    fail "l2-beyond: the clusters past the damaged L2 table differ from qemu's"
is_mounted "$T/m" || fail "the mount died"
unmount_img "$T/m"
