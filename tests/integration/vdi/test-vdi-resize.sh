#!/bin/bash
# vdi resize through a --growable mount: dynamic and static images grow
# (the block map widened in its padding, or moved past the first data
# blocks when it has no room), shrink over unallocated blocks, and refuse
# to shrink over data with a clear error. After each step qemu-img reads
# the same virtual size and bytes as a raw shadow given the same truncate
# and writes, and `qemu-img check` finds no errors and no leaks. (QEMU
# cannot resize vdi images: the shadow is the oracle.)
. "$(dirname "$0")/../lib.sh"

vsize() {
    qemu-img info -f vdi --output=json "$1" |
        sed -n 's/^ *"virtual-size": \([0-9]*\),*$/\1/p'
}

# step IMAGE SHADOW SIZE WHAT [MARK]: truncate both to SIZE (and with MARK,
# write WHAT 3000 bytes before the end of both), then compare
step() {
    local img=$1 shadow=$2 size=$3 what=$4 mark=${5:-}
    mount_img --growable "$img" "$T/m.raw"
    truncate -s "$size" "$T/m.raw"
    expect_eq "$(stat -c %s "$T/m.raw")" "$size" "$what: size on the mount"
    [ -z "$mark" ] || printf '%s' "$what" |
        dd of="$T/m.raw" bs=1 seek=$((size - 3000)) conv=notrunc status=none
    unmount_img "$T/m.raw"
    truncate -s "$size" "$shadow"
    [ -z "$mark" ] || printf '%s' "$what" |
        dd of="$shadow" bs=1 seek=$((size - 3000)) conv=notrunc status=none
    expect_eq "$(vsize "$img")" "$size" "$what: qemu-img virtual size"
    qemu-img check -f vdi "$img" >"$T/check" 2>&1 ||
        fail "$what: qemu-img check: $(cat "$T/check")"
    qemu-img compare -q -f vdi -F raw "$img" "$shadow" ||
        fail "$what: qemu-img reads other bytes than the shadow"
}

img=$T/d.vdi shadow=$T/d.shadow
qemu-img create -q -f vdi "$img" 8M
qemu-io -f vdi -c "write -P 0x5c 0 5M" -c "write -P 0x5d 5M 1536k" "$img" >/dev/null
qemu-img convert -f vdi -O raw "$img" "$shadow"
step "$img" "$shadow" $((100 << 20)) "dynamic grow in the map's room"
# 1 GiB needs 1024 map entries: the map moves over the first data blocks
step "$img" "$shadow" $((1 << 30)) "dynamic grow, map moved"
qemu-io -f vdi -c "write -P 0x71 20M 1M" "$img" >/dev/null
qemu-io -f raw -c "write -P 0x71 20M 1M" "$shadow" >/dev/null
# shrink over data: refused, nothing changes
mount_img --growable "$img" "$T/m.raw"
truncate -s $((10 << 20)) "$T/m.raw" 2>"$T/err" &&
    fail "a shrink over vdi data was accepted"
expect_eq "$(stat -c %s "$T/m.raw")" $((1 << 30)) "refused shrink: size"
grep -q "Operation not supported" "$T/err" || fail "shrink error: $(cat "$T/err")"
unmount_img "$T/m.raw"
step "$img" "$shadow" $((950 << 20)) "dynamic shrink over unallocated blocks"
step "$img" "$shadow" $((20 * 1048576 + 3 * 512)) "shrink into a block"
step "$img" "$shadow" $((25 << 20)) "grow over the cut block's tail" mark

img=$T/s.vdi shadow=$T/s.shadow
qemu-img create -q -f vdi -o static=on "$img" 4M
qemu-io -f vdi -c "write -P 0x3c 0 4M" "$img" >/dev/null
qemu-img convert -f vdi -O raw "$img" "$shadow"
step "$img" "$shadow" $((200 << 20)) "static grow, map moved" mark
