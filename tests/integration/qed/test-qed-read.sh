#!/bin/bash
# Reads: the corpus image gives the MANIFEST's hash; images qemu-img makes
# with several cluster and table sizes, holes, zero clusters and a two-level
# backing chain (raw under qed under qed) read byte for byte as qemu-img
# convert reads them, and SEEK_DATA/SEEK_HOLE agree with qemu-img map.
. "$(dirname "$0")/../lib.sh"

zcat "$DATA/qed/gen-qed.qed.gz" >"$T/gen.qed"
mount_img -r "$T/gen.qed" "$T/gen.raw"
expect_eq "$(sha "$T/gen.raw")" \
    8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc "gen-qed.qed"
unmount_img "$T/gen.raw"
note "gen-qed.qed: MANIFEST hash"

# the raw base: a pattern, so a misplaced cluster shows
python3 -c "
import sys
sys.stdout.buffer.write(b''.join(bytes([i % 251]) * 4096 for i in range(5 * 256)))
" >"$T/base.raw"

for cfg in 4096:2 16384:4 65536:16; do
    cs=${cfg%:*} ts=${cfg#*:}
    mid=$T/mid-$cs-$ts.qed top=$T/top-$cs-$ts.qed
    qemu-img create -q -f qed -o cluster_size=$cs,table_size=$ts \
        -b "$T/base.raw" -F raw "$mid" 24M
    qemu-io -f qed -c "write -P 0x21 1M 100k" -c "write -z 2M 64k" \
        -c "write -P 0x22 6000k 5k" -c "write -P 0x23 21M 64k" "$mid" >/dev/null
    qemu-img create -q -f qed -o cluster_size=$cs,table_size=$ts \
        -b "$mid" -F qed "$top" 24M
    qemu-io -f qed -c "write -P 0x31 1050k 8k" -c "write -z 4M 128k" \
        -c "write -P 0x32 23M 4k" "$top" >/dev/null
    for img in "$mid" "$top"; do
        mount_img -r "$img" "$T/m.raw"
        expect_eq "$(sha "$T/m.raw")" "$(qemu_raw_sha "$img" qed)" \
            "$(basename "$img") content"
        seek_map "$T/m.raw" >"$T/ours.map"
        qemu_data_map "$img" >"$T/theirs.map"
        cmp -s "$T/ours.map" "$T/theirs.map" ||
            fail "$(basename "$img"): hole map differs: $(diff "$T/ours.map" "$T/theirs.map" | head -5)"
        unmount_img "$T/m.raw"
    done
    note "cluster_size=$cs table_size=$ts: content and hole map"
done

# one-cluster tables (qemu cannot read them back) read as the same writes
# to a qemu-made image with two-cluster tables
"$IMGFUSE" create -F qed -o cluster_size=4K,table_size=1 "$T/t1.qed" 8M >/dev/null
qemu-img create -q -f qed -o cluster_size=4K,table_size=2 "$T/t2.qed" 8M
for ts in 1 2; do
    mount_img "$T/t$ts.qed" "$T/m.raw"
    truncate -s 8M "$T/sh$ts"
    mirror_writes "$T/m.raw" "$T/sh$ts" 7 40
    unmount_img "$T/m.raw"
done
qemu-img check -q "$T/t2.qed" || fail "table_size=2: qemu-img check"
mount_img -r "$T/t1.qed" "$T/a.raw"
mount_img -r "$T/t2.qed" "$T/b.raw"
cmp -s "$T/a.raw" "$T/b.raw" || fail "table_size=1 reads differ from table_size=2"
unmount_img "$T/a.raw"
unmount_img "$T/b.raw"
note "table_size=1: written and read back"
