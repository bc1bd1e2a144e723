#!/bin/bash
# qcow2 over NBD: qemu-nbd serves a qcow2 file's bytes (-f raw) and imgfuse
# probes and opens the qcow2 format on top of the nbd protocol node. An NBD
# export cannot grow, so the written image has its metadata preallocated.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nbd-lib.sh"

img=$T/disk.qcow2
qemu-img create -q -f qcow2 "$img" 32M
qemu-io -f qcow2 -c 'write -P 0x61 0 1M' -c 'write -P 0x62 10M 64k' \
    -c 'write -z 20M 1M' "$img" > /dev/null
want=$(qemu_raw_sha "$img" qcow2)
sock=$NBD_S/qc.sock
start_qemu_nbd qc -k "$sock" -f raw -x img "$img"
uri="nbd+unix:///img?socket=$sock"

"$IMGFUSE" info "$uri" > "$T/info" 2>&1 || fail "info failed: $(cat "$T/info")"
grep -qi qcow2 "$T/info" || fail "info does not see qcow2: $(cat "$T/info")"

mount_img -r "$uri" "$T/m"
expect_eq "$(stat -c %s "$T/m")" 33554432 "virtual size"
expect_eq "$(sha "$T/m")" "$want" "raw content of qcow2 over nbd"
seek_map "$T/m" > "$T/ours.map"
qemu_data_map -U -f qcow2 "$img" > "$T/qemu.map"
diff -u "$T/qemu.map" "$T/ours.map" || fail "SEEK_DATA/SEEK_HOLE differ from qemu-img map"
unmount_img "$T/m"

note "writes through qcow2 over nbd"
w=$T/w.qcow2
qemu-img create -q -f qcow2 -o preallocation=metadata "$w" 16M
start_qemu_nbd qw -k "$NBD_S/qw.sock" -f raw "$w"
mount_img "nbd+unix:///?socket=$NBD_S/qw.sock" "$T/mw"
head -c 1M /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/mw" bs=64k seek=40 conv=notrunc,fsync status=none
unmount_img "$T/mw"
nbd_stop qw
qemu-img check -q "$w" || fail "qemu-img check fails after writes over nbd"
qemu-img convert -f qcow2 -O raw "$w" "$T/w.raw"
cmp <(dd if="$T/w.raw" bs=64k skip=40 count=16 status=none) "$T/pat" ||
    fail "qemu-img does not read back what was written through qcow2 over nbd"
echo OK
