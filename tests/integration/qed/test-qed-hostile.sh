#!/bin/bash
# Corrupt and hostile QED images fail with a clear message, never a crash or
# a hang: truncated files, bad magic, cluster and table sizes outside the
# spec, unknown features, tables beyond the end or in the header, absurd
# sizes, backing names outside the header; table entries that point beyond
# the file or into the metadata give EIO on that cluster (logged once) and
# a write there never lands on the header. Run it under ASan too:
# IMGFUSE=build-asan/imgfuse.
. "$(dirname "$0")/../lib.sh"

zcat "$DATA/qed/gen-qed.qed.gz" >"$T/good.qed"
size=$(stat -c %s "$T/good.qed")

# every variant from one python run: $T/NAME.qed
variants() {
    python3 - "$T/good.qed" "$T" <<'PY'
import struct, sys
good = open(sys.argv[1], 'rb').read()
variants = {
    'magic': 'le32(0, 0x12345678)',
    'cluster-small': 'le32(4, 2048)',
    'cluster-odd': 'le32(4, 65537)',
    'cluster-huge': 'le32(4, 1 << 31)',
    'table-zero': 'le32(8, 0)',
    'table-big': 'le32(8, 32)',
    'table-mem': 'le32(4, 1 << 26); le32(8, 16)',
    'header-size': 'le32(12, 0xffffffff)',
    'features': 'le64(16, 0x80)',
    'l1-beyond': 'le64(40, 1 << 40)',
    'l1-header': 'le64(40, 0)',
    'size': 'le64(48, (1 << 63) - 512)',
    'size-odd': 'le64(48, 1000)',
    'backing': 'le64(16, 1); le32(56, 65530); le32(60, 100)',
    'backing-nul': 'le64(16, 1); le32(56, 64); le32(60, 8)',
    'l1-entry': 'le64(l1, 1 << 40)',
    'l2-entry': 'le64(l2, 1 << 40)',
    'l2-header': 'le64(l2, 0)\nle64(l2 + 8, 65536)',
}
for name, code in variants.items():
    d = bytearray(good)
    def le32(o, v): d[o:o + 4] = struct.pack('<I', v)
    def le64(o, v): d[o:o + 8] = struct.pack('<Q', v)
    l1 = struct.unpack('<Q', d[40:48])[0]
    l2 = struct.unpack('<Q', d[l1:l1 + 8])[0]
    exec(code)
    open('%s/%s.qed' % (sys.argv[2], name), 'wb').write(d)
PY
}
variants

head -c 100000 "$T/good.qed" >"$T/truncated.qed"
expect_error "$T/truncated.qed" "L1 table offset .* beyond the end"
head -c 40 "$T/good.qed" >"$T/tiny.qed"
expect_error "$T/tiny.qed" "too small to be a qed image" -F qed
expect_error "$T/magic.qed" "not a qed image" -F qed
expect_error "$T/cluster-small.qed" "invalid qed cluster size 2048"
expect_error "$T/cluster-odd.qed" "invalid qed cluster size 65537"
expect_error "$T/cluster-huge.qed" "invalid qed cluster size"
expect_error "$T/table-zero.qed" "invalid qed table size 0"
expect_error "$T/table-big.qed" "invalid qed table size 32"
expect_error "$T/table-mem.qed" "tables of .* bytes are not supported"
expect_error "$T/header-size.qed" "invalid qed header size"
expect_error "$T/features.qed" "unknown features 0x80"
expect_error "$T/l1-beyond.qed" "L1 table offset"
expect_error "$T/l1-header.qed" "L1 table offset 0"
expect_error "$T/size.qed" "invalid qed image size"
expect_error "$T/size-odd.qed" "invalid qed image size 1000"
expect_error "$T/backing.qed" "backing file name .* outside the header"
expect_error "$T/backing-nul.qed" "backing file name holds a NUL"

# entries pointing out of the file or into the metadata: EIO, logged once
for name in l1-entry l2-entry; do
    mount_img -r "$T/$name.qed" "$T/m.raw" 2>"$T/log"
    ! dd if="$T/m.raw" of=/dev/null bs=64k count=1 status=none 2>/dev/null ||
        fail "$name: read of the bad cluster worked"
    # one L2 table covers this whole image: only a bad L2 entry spares others
    [ $name = l1-entry ] ||
        dd if="$T/m.raw" of=/dev/null bs=64k skip=100 count=1 status=none ||
        fail "$name: a good cluster cannot be read"
    unmount_img "$T/m.raw"
    rc=0
    "$IMGFUSE" check "$T/$name.qed" >"$T/out" 2>&1 || rc=$?
    expect_eq "$rc" 2 "$name: check exit status ($(cat "$T/out"))"
    note "$name: EIO, check finds it"
done
# l2-header: cluster 0 unallocated now, cluster 1 points at the L1 table
cp "$T/l2-header.qed" "$T/before.qed"
mount_img "$T/l2-header.qed" "$T/m.raw" 2>"$T/log"
! dd if=/dev/zero of="$T/m.raw" bs=64k seek=1 count=1 conv=notrunc status=none 2>/dev/null ||
    fail "l2-header: write into the L1 table worked"
unmount_img "$T/m.raw"
cmp -s -n $((5 * 65536)) "$T/l2-header.qed" "$T/before.qed" ||
    fail "l2-header: the header or the L1 table changed"
note "l2-header: write refused, metadata intact"
