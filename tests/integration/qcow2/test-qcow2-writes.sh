#!/bin/bash
# Random writes, punched holes and zeroed ranges through the mount from 4
# threads, mirrored in a shadow file; after unmount `qemu-img check` finds
# no errors and no leaks and `qemu-img compare` finds image == shadow. For
# v2 and v3, clusters of 512 B, 64 KiB and 2 MiB, lazy refcounts, extended
# L2, refcount_bits 1, with and without a backing file, an external data
# file, and an image with an internal snapshot (copy-on-write of shared
# tables and clusters; the snapshot must stay intact).
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
SIZE=24M

run() {
    local img=$1 what=$2 ops=${3:-150} mnt=$T/m.raw rc=0
    mount_img "$img" "$mnt"
    python3 "$here/shadow-writer.py" "$mnt" "$T/shadow" $RANDOM "$ops" ||
        fail "$what: writer failed"
    unmount_img "$mnt"
    qemu-img check -q "$img" >"$T/check" 2>&1 || rc=$?
    [ $rc -eq 0 ] || fail "$what: qemu-img check rc $rc: $(cat "$T/check")"
    qemu-img compare -q -f qcow2 -F raw "$img" "$T/shadow" ||
        fail "$what: image differs from the shadow"
    note "$what ok"
}

# base with data everywhere, for the backing tests
qemu-img create -q -f qcow2 "$T/base.qcow2" $SIZE
qemu-io -f qcow2 -c "write -P 0x5a 0 $SIZE" -c "write -z 4M 2M" \
    "$T/base.qcow2" >/dev/null

n=0
for opts in "" compat=0.10 cluster_size=512 cluster_size=2M lazy_refcounts=on \
            extended_l2=on refcount_bits=1 \
            backing:compat=1.1 backing:compat=0.10 \
            backing:extended_l2=on,cluster_size=32k \
            backing:lazy_refcounts=on; do
    n=$((n + 1))
    img=$T/w$n.qcow2
    rm -f "$T/shadow"
    if [[ $opts == backing:* ]]; then
        o=${opts#backing:}
        qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 -o "$o" "$img"
        qemu-img convert -f qcow2 -O raw "$T/base.qcow2" "$T/shadow"
    else
        qemu-img create -q -f qcow2 ${opts:+-o "$opts"} "$img" $SIZE
        truncate -s $SIZE "$T/shadow"
    fi
    run "$img" "${opts:-v3 defaults}"
done

# external data file
rm -f "$T/shadow"
qemu-img create -q -f qcow2 -o data_file="$T/dd.bin" "$T/dd.qcow2" $SIZE
truncate -s $SIZE "$T/shadow"
run "$T/dd.qcow2" "data_file"

# internal snapshot: writes must copy shared tables and clusters
rm -f "$T/shadow"
qemu-img create -q -f qcow2 "$T/sn.qcow2" $SIZE
qemu-io -f qcow2 -c "write -P 0x77 0 12M" -c "write -P 0x78 16M 1M" \
    "$T/sn.qcow2" >/dev/null
qemu-img snapshot -c s1 "$T/sn.qcow2"
qemu-img convert -f qcow2 -O raw "$T/sn.qcow2" "$T/shadow"
cp "$T/shadow" "$T/snap.raw"
run "$T/sn.qcow2" "image with an internal snapshot" 100
qemu-img convert -f qcow2 -O raw -l snapshot.name=s1 "$T/sn.qcow2" "$T/s1.raw"
cmp -s "$T/s1.raw" "$T/snap.raw" || fail "the snapshot changed"
note "snapshot intact"

# --growable: grow (the L1 table with it), write at the new end, a shrink
# over unallocated space (shrinks over data: test-qcow2-resize.sh)
qemu-img create -q -f qcow2 -o cluster_size=4k "$T/g.qcow2" 1M
mount_img --growable "$T/g.qcow2" "$T/g.raw"
truncate -s 3G "$T/g.raw"
printf hello | dd of="$T/g.raw" bs=1 seek=$((3 * 1024 * 1024 * 1024 - 5)) \
    conv=notrunc status=none
truncate -s 4G "$T/g.raw"
truncate -s $((3 * 1024 * 1024 * 1024)) "$T/g.raw"
unmount_img "$T/g.raw"
qemu-img check -q "$T/g.qcow2" || fail "resize: check"
expect_eq "$(qemu-img info --output=json "$T/g.qcow2" |
             python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
    $((3 * 1024 * 1024 * 1024)) "resize: virtual size"
qemu-io -f qcow2 -c "read -P 0x6f $((3 * 1024 * 1024 * 1024 - 1)) 1" \
    "$T/g.qcow2" >"$T/io" 2>&1
grep -q "read 1/1" "$T/io" && ! grep -q "verification failed" "$T/io" ||
    fail "resize: data at the end: $(cat "$T/io")"
note "resize ok"

# fio with verification, 4 jobs writing at once, then the oracle's check
for opts in cluster_size=16k extended_l2=on,cluster_size=64k; do
    qemu-img create -q -f qcow2 -o $opts "$T/fio.qcow2" 64M
    mount_img "$T/fio.qcow2" "$T/fio.raw"
    fio --name=v --filename="$T/fio.raw" --rw=randwrite --bsrange=512-256k \
        --numjobs=4 --size=16M --offset_increment=16M --verify=crc32c \
        --verify_fatal=1 --do_verify=1 --ioengine=psync --fsync=50 \
        --output="$T/fio.out" || fail "fio $opts: $(tail -5 "$T/fio.out")"
    grep -q "err= 0" "$T/fio.out" || fail "fio $opts: $(cat "$T/fio.out")"
    unmount_img "$T/fio.raw"
    qemu-img check -q "$T/fio.qcow2" || fail "fio $opts: qemu-img check"
    rm -f "$T/fio.qcow2"
    note "fio verify $opts ok"
done

# persistent bitmaps: kept up to date (test-qcow2-bitmaps.sh checks the
# bits), so the autoclear bit stays set and qemu-img check stays clean
qemu-img create -q -f qcow2 "$T/bm.qcow2" 16M
qemu-img bitmap --add "$T/bm.qcow2" b0
qemu-img bitmap --add "$T/bm.qcow2" b1 -g 4k
qemu-io -f qcow2 -c "write -P 2 0 4M" "$T/bm.qcow2" >/dev/null
qemu-img convert -f qcow2 -O raw "$T/bm.qcow2" "$T/shadow"
run "$T/bm.qcow2" "image with persistent bitmaps" 50
autoclear=$(python3 -c 'import struct,sys; print(struct.unpack(">Q", open(sys.argv[1],"rb").read(96)[88:96])[0])' "$T/bm.qcow2")
expect_eq "$autoclear" 1 "bitmaps autoclear bit"
