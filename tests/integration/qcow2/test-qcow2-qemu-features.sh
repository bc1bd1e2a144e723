#!/bin/bash
# Images written by qemu-img/qemu-io with each qcow2 feature read equal to
# `qemu-img convert -O raw`, and SEEK_DATA/SEEK_HOLE agree with qemu-img map:
# v2, v3, clusters of 512 B and 2 MiB, refcount_bits 1 and 64, zlib and
# zstd compression, extended L2 (subcluster writes, zeroes), external data
# files (plain and raw), and a 3-level backing chain with zeroed and
# discarded ranges in the top layer.
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

fsha() {
    if command -v openssl >/dev/null; then
        openssl dgst -sha256 -r "$1" | cut -d' ' -f1
    else
        sha "$1"
    fi
}

# A pattern of writes, zeroes and discards at cluster and sub-cluster
# granularity, with a few unaligned ones.
populate() {
    qemu-io -f qcow2 \
        -c "write -P 0x11 0 1M" -c "write -P 0x22 3M 64k" \
        -c "write -P 0x33 5243392 7k" -c "write -P 0x44 8384512 12k" \
        -c "write -z 512k 256k" -c "discard 3M 32k" \
        -c "write -P 0x55 12M 2k" -c "write -P 0x66 15729874 3000" \
        "$1" >/dev/null
}

check() {
    local img=$1 what=$2 mnt=$T/m.raw
    mount_img -r "$img" "$mnt"
    expect_eq "$(fsha "$mnt")" "$(qemu_raw_sha "$img")" "$what"
    python3 "$here/map-compare.py" "$mnt" "$img" >/dev/null ||
        fail "$what: SEEK_DATA/HOLE differ from qemu-img map"
    unmount_img "$mnt"
    note "$what ok"
}

n=0
for opts in compat=0.10 compat=1.1 cluster_size=512 cluster_size=2M \
            refcount_bits=1 refcount_bits=64 extended_l2=on \
            extended_l2=on,cluster_size=32k lazy_refcounts=on; do
    n=$((n + 1))
    img=$T/f$n.qcow2
    qemu-img create -q -f qcow2 -o "$opts" "$img" 16M
    populate "$img"
    check "$img" "$opts"
done

# compressed clusters: convert -c from a patterned raw file
python3 - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(7)
with open(sys.argv[1], 'wb') as f:
    for i in range(256):
        kind = i % 4
        if kind == 0:
            f.write(bytes(65536))
        elif kind == 1:
            f.write(r.randbytes(65536))
        else:
            f.write(bytes([i]) * 30000 + r.randbytes(100) + bytes(35436))
PY
for c in zlib zstd; do
    qemu-img convert -q -c -f raw -O qcow2 -o compression_type=$c \
        "$T/src.raw" "$T/c-$c.qcow2"
    check "$T/c-$c.qcow2" "compressed $c"
    expect_eq "$(fsha "$T/src.raw")" "$(qemu_raw_sha "$T/c-$c.qcow2")" "$c src"
done

# external data file, plain and raw
for raw in off on; do
    img=$T/d-$raw.qcow2
    qemu-img create -q -f qcow2 -o data_file=$T/d-$raw.bin,data_file_raw=$raw \
        "$img" 16M
    populate "$img"
    check "$img" "data_file_raw=$raw"
done

# a backing chain of three, relative names, the top hiding base data
qemu-img create -q -f qcow2 "$T/base.qcow2" 16M
qemu-io -f qcow2 -c "write -P 0xa1 0 16M" "$T/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 -o cluster_size=32k \
    "$T/mid.qcow2"
qemu-io -f qcow2 -c "write -P 0xb2 1M 3M" -c "write -P 0xb3 9437284 5000" \
    "$T/mid.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 "$T/top.qcow2" 20M
qemu-io -f qcow2 -c "write -P 0xc3 2M 64k" -c "write -z 6M 1M" \
    -c "write -P 0xc4 10484736 2k" -c "discard 12M 128k" \
    -c "write -P 0xc5 18M 4k" "$T/top.qcow2" >/dev/null
check "$T/top.qcow2" "backing chain of 3 (top larger than its backing)"
# no backing_fmt: the backing format is probed. The extension is renamed
# to an unknown type, which must be ignored as the spec says.
cp "$T/top.qcow2" "$T/top2.qcow2"
python3 - "$T/top2.qcow2" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    h = f.read(4096)
    off = struct.unpack('>I', h[100:104])[0]
    while True:
        t, n = struct.unpack('>II', h[off:off + 8])
        if t == 0:
            sys.exit('no backing format extension')
        if t == 0xe2792aca:
            f.seek(off)
            f.write(struct.pack('>I', 0x7e57e57e))
            break
        off += 8 + (n + 7) // 8 * 8
PY
check "$T/top2.qcow2" "backing format probed, unknown extension ignored"
