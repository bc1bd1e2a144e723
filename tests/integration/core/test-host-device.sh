#!/bin/bash
# host_device: a loop device's size, logical block size as alignment,
# unaligned writes through it, discard and zeroes.
. "$(dirname "$0")/../lib.sh"

[ -e /dev/loop-control ] || { echo "no loop devices on this machine"; exit 77; }
truncate -s 32M "$T/backing"
dev=$(losetup -f --show --sector-size 4096 "$T/backing" 2>/dev/null || losetup -f --show "$T/backing")
trap 'fusermount3 -u "$T/dev.raw" 2>/dev/null || true; sleep 0.2; losetup -d "$dev" || true; _cleanup' EXIT
"$IMGFUSE" info "$dev" > "$T/info"
grep -q "protocol: host_device" "$T/info" || fail "not host_device: $(cat "$T/info")"
grep -q "virtual size: 32 MiB" "$T/info" || fail "size: $(cat "$T/info")"
lbs=$(blockdev --getss "$dev")
grep -q "logical-block-size: $lbs" "$T/info" || fail "block size $lbs not reported"

mount_img "$dev" "$T/dev.raw"
expect_eq "$(stat -c %s "$T/dev.raw")" 33554432 "device size"
printf 'odd' | dd of="$T/dev.raw" bs=1 seek=1001 conv=notrunc status=none
head -c 1M /dev/urandom > "$T/r"
dd if="$T/r" of="$T/dev.raw" bs=1M seek=3 conv=notrunc status=none
fallocate -z -o $((3 << 20)) -l 8192 "$T/dev.raw"
sync "$T/dev.raw"
unmount_img "$T/dev.raw"
expect_eq "$(dd if="$T/backing" bs=1 skip=1001 count=3 status=none)" odd "unaligned write"
cmp <(dd if="$T/backing" bs=1 skip=$(((3 << 20) + 8192)) count=$(((1 << 20) - 8192)) status=none) \
    <(tail -c $(((1 << 20) - 8192)) "$T/r") || fail "1 MiB write"
expect_eq "$(dd if="$T/backing" bs=8192 skip=384 count=1 status=none | tr -d '\0' | wc -c)" 0 "zeroed range"
echo ok
