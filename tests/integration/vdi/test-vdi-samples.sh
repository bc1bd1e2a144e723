#!/bin/bash
# Real VDI images (qemu-made dynamic and static, VirtualBox's basic.vdi)
# and images qemu converts into both kinds read byte for byte as the corpus
# MANIFEST and qemu say, and SEEK_DATA / SEEK_HOLE follow the block map as
# qemu-img map reports it.
. "$(dirname "$0")/../lib.sh"

# check NAME WANT: the mounted image hashes to WANT and to qemu's hash, and
# its data runs are qemu-img map's
check() {
    local img=$T/img/$1.vdi raw=$T/m/$1.raw want=$2 got
    got=$(sha "$raw")
    [ "$want" = qemu ] || expect_eq "$got" "$want" "$1 content"
    expect_eq "$got" "$(qemu_raw_sha "$img" vdi)" "$1 vs qemu"
    expect_eq "$(seek_map "$raw")" "$(qemu_data_map -f vdi "$img")" "$1 data runs"
    note "$1: ok"
}

mkdir -p "$T/img" "$T/m"
for f in gen-vdi-dynamic gen-vdi-static basic; do
    zcat "$DATA/vdi/$f.vdi.gz" >"$T/img/$f.vdi"
done
# what qemu writes for each kind, from data with holes
head -c 3M /dev/urandom >"$T/pattern.raw"
truncate -s 7M "$T/pattern.raw"
head -c 1500000 /dev/urandom >>"$T/pattern.raw"
for o in static=off static=on; do
    qemu-img convert -f raw -O vdi -o "$o" "$T/pattern.raw" "$T/img/q-${o/=/-}.vdi"
done

mount_img -r "$T"/img/*.vdi "$T/m"
check gen-vdi-dynamic 8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc
check gen-vdi-static 711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97
check basic 92d551781f9b62f3c8601ffd375cc7547efb1127e3cd2acc652f50f2d31afb8c
check q-static-off qemu
check q-static-on qemu
# the size rounds up to a sector; the data is the pattern's
cmp -s -n "$(stat -c %s "$T/pattern.raw")" "$T/m/q-static-off.raw" "$T/pattern.raw" ||
    fail "converted data differs from the pattern"
unmount_img "$T/m"
