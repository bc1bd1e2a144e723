#!/bin/bash
# An NBD export has no paths: a qcow2 on it whose header names a backing
# file by a relative path gives a clear error naming the image and the
# name (never a lookup on this host), and opens with --backing=none.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nbd-lib.sh"

qemu-img create -q -f qcow2 "$T/base.qcow2" 8M
qemu-io -f qcow2 -c 'write -P 0x44 0 1M' "$T/base.qcow2" > /dev/null
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$T/top.qcow2"
qemu-io -f qcow2 -c 'write -P 0x45 2M 64k' "$T/top.qcow2" > /dev/null
sock=$NBD_S/t.sock
start_qemu_nbd t -k "$sock" -f raw -x top "$T/top.qcow2"
uri="nbd+unix:///top?socket=$sock"

if "$IMGFUSE" info "$uri" > "$T/out" 2> "$T/err"; then
    fail "a relative backing name on an nbd export was opened: $(cat "$T/out")"
fi
grep -qF "$uri: backing file 'base.qcow2' is a file name, but the image is on nbd" "$T/err" ||
    fail "unclear error: $(cat "$T/err")"
grep -qF -- "--backing=none" "$T/err" || fail "the error does not suggest --backing=none"

mount_img -r --backing=none "$uri" "$T/m"
qemu-img create -q -f qcow2 "$T/alone.qcow2" 8M
qemu-io -f qcow2 -c 'write -P 0x45 2M 64k' "$T/alone.qcow2" > /dev/null
expect_eq "$(sha "$T/m")" "$(qemu_raw_sha "$T/alone.qcow2" qcow2)" \
    "qcow2 over nbd read without its backing file"
unmount_img "$T/m"
echo OK
