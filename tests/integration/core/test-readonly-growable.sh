#!/bin/bash
# -r refuses writes with EROFS; --growable lets writes and truncate resize.
. "$(dirname "$0")/../lib.sh"

img=$T/r.img
qemu-img create -q -f raw "$img" 4M
sum=$(sha "$img")
mount_img -r "$img" "$T/ro"
if printf 'x' | dd of="$T/ro" conv=notrunc status=none 2>"$T/err"; then fail "wrote to -r mount"; fi
grep -q "Read-only file system" "$T/err" || fail "read-only error: $(cat "$T/err")"
cat "$T/ro" >/dev/null
unmount_img "$T/ro"
expect_eq "$(sha "$img")" "$sum" "read-only mount changed the image"

mount_img --growable "$img" "$T/grow"
printf 'end' | dd of="$T/grow" bs=1 seek=$((6 << 20)) conv=notrunc status=none
expect_eq "$(stat -c %s "$T/grow")" $(((6 << 20) + 3)) "grown by a write"
truncate -s 10M "$T/grow"
expect_eq "$(stat -c %s "$T/grow")" 10485760 "grown by truncate"
truncate -s 5M "$T/grow"
expect_eq "$(stat -c %s "$T/grow")" 5242880 "shrunk by truncate"
unmount_img "$T/grow"
expect_eq "$(stat -c %s "$img")" 5242880 "image resized"

mount_img "$img" "$T/fixed"
if truncate -s 10M "$T/fixed" 2>/dev/null; then fail "a fixed-size mount was resized"; fi
unmount_img "$T/fixed"
echo ok
