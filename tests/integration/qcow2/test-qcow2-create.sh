#!/bin/bash
# `imgfuse create -F qcow2 -o ...` with each option makes an image that
# `qemu-img check` finds clean and `qemu-img info` describes as asked;
# invalid combinations are refused; create-and-mount then dd fills a new
# image that qemu-img reads back equal.
. "$(dirname "$0")/../lib.sh"
# QEMU 7.2 looks for a relative data_file name in its working directory,
# imgfuse next to the image: run where both agree
cd "$T"

# info_field IMG JSON-PATH: a value from qemu-img info --output=json
info_field() {
    qemu-img info -U --output=json "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v.get(k, {}) if isinstance(v, dict) else {}
print(v if v != {} else "")' "$2"
}

n=0
mk() {
    n=$((n + 1))
    local img=$T/c$n.qcow2 size=$1 opts=$2 rc=0
    shift 2
    "$IMGFUSE" create -F qcow2 ${opts:+-o "$opts"} "$img" "$size" >/dev/null
    qemu-img check -q "$img" || fail "$opts: qemu-img check"
    expect_eq "$(info_field "$img" virtual-size)" "$(numfmt --from=iec "$size")" \
        "$opts: size"
    while [ $# -gt 0 ]; do
        expect_eq "$(info_field "$img" "$1")" "$2" "$opts: $1"
        shift 2
    done
    # usable: write through a mount, read back by the oracle
    mount_img "$img" "$T/m.raw"
    dd if=/dev/urandom of="$T/data" bs=64k count=8 status=none
    dd if="$T/data" of="$T/m.raw" bs=64k seek=3 conv=notrunc status=none
    unmount_img "$T/m.raw"
    qemu-img check -q "$img" || fail "$opts: check after writing"
    qemu-img convert -f qcow2 -O raw "$img" "$T/back.raw"
    cmp -s <(dd if="$T/back.raw" bs=64k skip=3 count=8 status=none) "$T/data" ||
        fail "$opts: data written through the mount not read back"
    note "create $opts ok"
}

fs=format-specific.data
mk 64M "" $fs.compat 1.1 cluster-size 65536 $fs.refcount-bits 16
mk 64M compat=0.10 $fs.compat 0.10
mk 64M compat=v3,cluster_size=512 cluster-size 512
mk 64M cluster_size=2M cluster-size 2097152
mk 64M refcount_bits=1 $fs.refcount-bits 1
mk 64M refcount_bits=64 $fs.refcount-bits 64
mk 64M lazy_refcounts=on $fs.lazy-refcounts True
mk 64M compression_type=zstd $fs.compression-type zstd
mk 64M extended_l2=on $fs.extended-l2 True
mk 64M preallocation=metadata
mk 16M preallocation=falloc
mk 16M preallocation=full
mk 64M "data_file=$T/ext.bin" $fs.data-file "$T/ext.bin"
mk 64M "data_file=ext2.bin,data_file_raw=on" $fs.data-file-raw True
mk 64M nocow=on
mk 64M "backing_file=c1.qcow2,backing_fmt=qcow2" backing-filename c1.qcow2 \
    backing-filename-format qcow2
mk 64M "backing_file=c1.qcow2,backing_fmt=qcow2,extended_l2=on,preallocation=metadata"
qemu-img convert -O raw "$T/c14.qcow2" "$T/c14.raw"
cmp -s "$T/ext2.bin" "$T/c14.raw" ||
    fail "data_file_raw: the data file is not the raw image"

# refused combinations, with a message and no file left behind
for bad in compat=0.10,lazy_refcounts=on cluster_size=1000 cluster_size=4M \
           refcount_bits=3 extended_l2=on,cluster_size=4k data_file_raw=on \
           compression_type=lz4 compat=0.10,compression_type=zstd \
           compat=0.10,extended_l2=on preallocation=full,backing_file=c1.qcow2 \
           compat=0.9; do
    rc=0
    "$IMGFUSE" create -F qcow2 -o "$bad" "$T/bad.qcow2" 16M 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "$bad: accepted (rc $rc)"
    [ -s "$T/err" ] || fail "$bad: no message"
    [ ! -e "$T/bad.qcow2" ] || fail "$bad: left a file behind"
done
note "bad option combinations refused"

# create and mount in one go, then fill it with dd
head -c 20M /dev/urandom >"$T/src.raw"
mount_img --create 20M --create-opts cluster_size=4k -F qcow2 "$T/new.qcow2" \
    "$T/new.raw"
dd if="$T/src.raw" of="$T/new.raw" bs=1M conv=notrunc status=none
unmount_img "$T/new.raw"
qemu-img check -q "$T/new.qcow2" || fail "create+mount: check"
qemu-img compare -q -f qcow2 -F raw "$T/new.qcow2" "$T/src.raw" ||
    fail "create+mount: contents"
note "create and mount, dd: ok"

# compress=on: cp into a new image makes a compressed image, zlib and zstd;
# then overwrite parts of it through a plain mount (copy-on-write of
# compressed clusters)
python3 - "$T/text.raw" <<'PY'
import random, sys
r = random.Random(5)
words = [r.randbytes(r.randint(2, 9)) for _ in range(300)]
with open(sys.argv[1], 'wb') as f:
    for i in range(160):
        f.write(b''.join(r.choice(words) for _ in range(30000))[:65536])
PY
for c in zlib zstd; do
    img=$T/cp-$c.qcow2
    mount_img --create 10M --create-opts compression_type=$c -o compress=on \
        -F qcow2 "$img" "$T/cp.raw"
    cp "$T/text.raw" "$T/cp.raw"
    unmount_img "$T/cp.raw"
    qemu-img check "$img" >"$T/check" || fail "compress $c: check"
    grep -q "100.00% compressed clusters" "$T/check" ||
        fail "compress $c: not compressed: $(cat "$T/check")"
    qemu-img compare -q -f qcow2 -F raw "$img" "$T/text.raw" ||
        fail "compress $c: contents"
    [ "$(stat -c %s "$img")" -lt "$(stat -c %s "$T/text.raw")" ] ||
        fail "compress $c: image not smaller than its data"
    mount_img "$img" "$T/cp.raw"
    printf 'overwritten' | dd of="$T/cp.raw" bs=1 seek=70000 conv=notrunc status=none
    printf 'overwritten' | dd of="$T/text.raw" bs=1 seek=70000 conv=notrunc status=none
    unmount_img "$T/cp.raw"
    qemu-img check -q "$img" || fail "compress $c: check after overwrite"
    qemu-img compare -q -f qcow2 -F raw "$img" "$T/text.raw" ||
        fail "compress $c: contents after overwrite"
    note "compress=on with $c: ok"
done
