#!/bin/bash
# Data written through the mount is what qemu-io reads from the image, and
# the other way round; unaligned I/O, short I/O at the end, pidfile, exit.
. "$(dirname "$0")/../lib.sh"

img=$T/disk.img
qemu-img create -q -f raw "$img" 64M
qemu-io -f raw -c 'write -P 0x5a 1M 1M' -c 'write -P 0x11 10000 3000' "$img" >/dev/null

mnt=$T/disk.raw                      # does not exist yet: imgfuse creates it
mount_img "$img" "$mnt"
is_mounted "$mnt" || fail "not mounted after imgfuse returned"
[ -s "$T/pid.$(echo "$mnt" | md5sum | cut -c1-8)" ] || fail "pidfile not written once live"
expect_eq "$(stat -c %s "$mnt")" 67108864 "size of the mounted file"

# qemu-io's writes read back through the mount
cmp <(head -c 1M /dev/zero | tr '\0' '\132') <(dd if="$mnt" bs=1M skip=1 count=1 status=none) \
    || fail "0x5a block differs through the mount"
expect_eq "$(dd if="$mnt" bs=1 skip=10000 count=3000 status=none | tr -d '\021' | wc -c)" 0 \
    "unaligned 0x11 run"

# writes through the mount, aligned and not, reach the image
head -c 5M /dev/urandom > "$T/rand"
dd if="$T/rand" of="$mnt" bs=1M seek=20 conv=notrunc status=none
dd if="$T/rand" of="$mnt" bs=1 count=777 seek=12345 conv=notrunc status=none
printf 'tail' | dd of="$mnt" bs=1 seek=$((64 * 1024 * 1024 - 4)) conv=notrunc status=none
sync "$mnt"
# a write at the end is ENOSPC, reads there are empty
if printf 'x' | dd of="$mnt" bs=1 seek=$((64 * 1024 * 1024)) conv=notrunc status=none 2>"$T/err"; then
    fail "write past the end of a fixed-size disk succeeded"
fi
grep -q "No space left" "$T/err" || fail "write past the end: wrong error: $(cat "$T/err")"
expect_eq "$(dd if="$mnt" bs=4096 skip=16384 status=none | wc -c)" 0 "read at EOF"
unmount_img "$mnt"
[ -e "$mnt" ] && fail "the mountpoint imgfuse created was left behind"
[ -e "$T/pid.$(echo "$mnt" | md5sum | cut -c1-8)" ] && fail "pidfile left behind"

qemu-io -f raw -c 'read -P 0x5a 1M 1M' "$img" | grep -q 'read 1048576' || fail "qemu-io read"
cmp <(dd if="$img" bs=1M skip=20 count=5 status=none) "$T/rand" || fail "1 MiB writes not in the image"
cmp <(dd if="$img" bs=1 skip=12345 count=777 status=none) <(head -c 777 "$T/rand") \
    || fail "unaligned write not in the image"
expect_eq "$(tail -c 4 "$img")" tail "last bytes of the image"
expect_eq "$(stat -c %s "$img")" 67108864 "image size unchanged"
echo ok
