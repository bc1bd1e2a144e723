#!/bin/bash
# Crash safety: a block allocation goes through the log. Kill imgfuse after
# a write, undo the in-place BAT update as if it never reached the disk, and
# the image must still hold the write: qemu sees a log to replay and its
# replay gives the data; our read-only mount replays it in memory without
# writing, our read-write mount replays it into the file.
. "$(dirname "$0")/../lib.sh"

img=$T/crash.vhdx
"$IMGFUSE" create -F vhdx -o block_size=1M "$img" 16M >/dev/null
truncate -s 16M "$T/expect.raw"
head -c 1M /dev/urandom >"$T/data"
dd if="$T/data" of="$T/expect.raw" bs=1M seek=5 conv=notrunc status=none

mount_img "$img" "$T/m.raw"
dd if="$T/data" of="$T/m.raw" bs=1M seek=5 conv=notrunc,fsync status=none
kill -9 "$(cat "$T"/pid.*)"
fusermount3 -u "$T/m.raw" 2>/dev/null || umount -l "$T/m.raw" 2>/dev/null || true

# our layout: log at 1 MiB (1 MiB long), metadata at 2 MiB, the BAT at 3 MiB
dd if=/dev/zero of="$img" bs=4K seek=$((3 * 256)) count=1 conv=notrunc status=none
if qemu-img info "$img" >"$T/qinfo" 2>&1; then
    fail "qemu opened the crashed image read-only: the log is not dirty"
fi
grep -q "log that needs to be replayed" "$T/qinfo" || fail "qemu: $(cat "$T/qinfo")"

cp "$img" "$T/by-qemu.vhdx"
qemu-io -c quit "$T/by-qemu.vhdx" >/dev/null || fail "qemu could not replay our log"
qemu-img check -q "$T/by-qemu.vhdx" || fail "check after qemu's replay"
qemu-img compare -q -f vhdx -F raw "$T/by-qemu.vhdx" "$T/expect.raw" ||
    fail "qemu's replay of our log lost the write"

before=$(sha "$img")
mount_img -r "$img" "$T/ro.raw"
cmp -s "$T/ro.raw" "$T/expect.raw" || fail "in-memory replay lost the write"
unmount_img "$T/ro.raw"
expect_eq "$(sha "$img")" "$before" "read-only mount wrote to the crashed image"

mount_img "$img" "$T/rw.raw"
cmp -s "$T/rw.raw" "$T/expect.raw" || fail "on-disk replay lost the write"
unmount_img "$T/rw.raw"
qemu-img check -q "$img" || fail "check after our replay"
qemu-img compare -q -f vhdx -F raw "$img" "$T/expect.raw" || fail "qemu reads our replay differently"
echo ok
