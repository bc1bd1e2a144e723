#!/bin/bash
# A directory mountpoint shows each SOURCE as NAME.raw; clashes refused.
. "$(dirname "$0")/../lib.sh"

mkdir -p "$T/a" "$T/b" "$T/mnt"
qemu-img create -q -f raw "$T/a/one.img" 4M
qemu-img create -q -f raw "$T/a/two.disk" 6M
qemu-img create -q -f raw "$T/b/one.img" 2M
qemu-io -f raw -c 'write -P 0x33 0 64k' "$T/a/two.disk" >/dev/null

mount_img "$T/a/one.img" "$T/a/two.disk" "$T/mnt"
expect_eq "$(ls "$T/mnt" | tr '\n' ' ')" "one.raw two.raw " "directory listing"
expect_eq "$(stat -c %s "$T/mnt/two.raw")" 6291456 "two.raw size"
expect_eq "$(head -c 4 "$T/mnt/two.raw" | od -An -tx1 | tr -d ' ')" 33333333 "two.raw data"
# kernel write caching is on in directory mode: sizes must still be right
dd if=/dev/urandom of="$T/mnt/one.raw" bs=4k count=100 conv=notrunc status=none
sync
expect_eq "$(stat -c %s "$T/mnt/one.raw")" 4194304 "one.raw size after writes"
cp "$T/mnt/one.raw" "$T/copy"
unmount_img "$T/mnt"
cmp "$T/copy" "$T/a/one.img" || fail "writes through directory mode not in the image"

if "$IMGFUSE" "$T/a/one.img" "$T/b/one.img" "$T/mnt" 2>"$T/err"; then
    fail "name clash mounted"
fi
grep -q "would both appear as one.raw" "$T/err" || fail "clash message: $(cat "$T/err")"
echo ok
