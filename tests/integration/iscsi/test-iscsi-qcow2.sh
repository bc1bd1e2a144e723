#!/bin/bash
# A qcow2 image on an iSCSI LUN: the format driver sits on the iscsi node.
# Reads match qemu-img's raw conversion of the backing file; writes through
# the mount land in the qcow2 (qemu-img check clean, qemu-img compare equal
# to the mount's bytes).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/iscsi-lib.sh"

lun=$T/lun.qcow2
qemu-img create -q -f qcow2 "$lun" 16M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 5M 512k' \
    -c 'write -z 6M 64k' "$lun" > /dev/null
# the lun is a fixed-size disk: leave room behind the qcow2 for new clusters
truncate -s 24M "$lun"
want=$(qemu_raw_sha "$lun" qcow2)
tgt_start q
tgt_lun q "$lun"
url=$(iscsi_url q)

note "probed as qcow2 over iscsi, read-only: same bytes as qemu-img"
"$IMGFUSE" info "$url" > "$T/info" 2>&1 || fail "info: $(cat "$T/info")"
grep -q "^file format: qcow2" "$T/info" || fail "not probed as qcow2: $(cat "$T/info")"
mount_img -r "$url" "$T/m"
expect_eq "$(stat -c %s "$T/m")" 16777216 "virtual size"
expect_eq "$(sha "$T/m")" "$want" "raw content"
unmount_img "$T/m"

note "writes through qcow2 over iscsi"
mount_img -F qcow2 "$url" "$T/m"
head -c 256k /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/m" bs=64k seek=40 conv=notrunc,fsync status=none ||
    fail "write through qcow2 over iscsi"
dd if=/dev/zero of="$T/m" bs=64k seek=2 count=1 conv=notrunc,fsync status=none
cp "$T/m" "$T/mounted.raw"
unmount_img "$T/m"
tgt_stop q
qemu-img check -q -f qcow2 "$lun" || fail "qemu-img check after writes"
qemu-img compare -q -f qcow2 -F raw "$lun" "$T/mounted.raw" ||
    fail "the qcow2 on the lun differs from what the mount showed"
cmp <(dd if="$T/mounted.raw" bs=64k skip=40 count=4 status=none) "$T/pat" ||
    fail "written range differs"
echo ok
