#!/bin/bash
# vmdk resize through a --growable mount: monolithicSparse grows (directory
# entries added in place, or the directory and its redundant copy moved to
# the end of the file), monolithicFlat and twoGbMaxExtentFlat grow their
# last data file, twoGbMaxExtentSparse grows its last extent; the
# descriptor's extent line and cylinders follow. Shrinks, streamOptimized
# and growing a twoGb extent past 2 GiB are refused with a clear error
# naming the image. After each step qemu-img reads the same virtual size
# and bytes as a raw shadow given the same truncate and writes, and
# `qemu-img check` is clean. (QEMU cannot resize vmdk: the shadow is the
# oracle.)
. "$(dirname "$0")/../lib.sh"

vsize() {
    qemu-img info -f vmdk --output=json "$1" |
        sed -n 's/^ *"virtual-size": \([0-9]*\),*$/\1/p' | head -1
}

# step IMAGE SHADOW SIZE WHAT: truncate both to SIZE, write WHAT 3000
# bytes before the end of both, then compare
step() {
    local img=$1 shadow=$2 size=$3 what=$4
    mount_img --growable -F vmdk "$img" "$T/m.raw"
    truncate -s "$size" "$T/m.raw"
    expect_eq "$(stat -c %s "$T/m.raw")" "$size" "$what: size on the mount"
    printf '%s' "$what" |
        dd of="$T/m.raw" bs=1 seek=$((size - 3000)) conv=notrunc status=none
    unmount_img "$T/m.raw"
    truncate -s "$size" "$shadow"
    printf '%s' "$what" |
        dd of="$shadow" bs=1 seek=$((size - 3000)) conv=notrunc status=none
    expect_eq "$(vsize "$img")" "$size" "$what: qemu-img virtual size"
    qemu-img check -f vmdk "$img" >"$T/check" 2>&1 ||
        fail "$what: qemu-img check: $(cat "$T/check")"
    qemu-img compare -q -f vmdk -F raw "$img" "$shadow" ||
        fail "$what: qemu-img reads other bytes than the shadow"
}

# refuse IMAGE SIZE WHAT PATTERN: the truncate fails, the size stays, the
# daemon's message matches PATTERN and names the image
refuse() {
    local img=$1 size=$2 what=$3 pat=$4 before pid i
    # in the foreground: the daemon's messages go to its stderr
    "$IMGFUSE" -f --growable -F vmdk "$img" "$T/m.raw" 2>"$T/log" &
    pid=$!
    _MOUNTS+=("$T/m.raw")
    for i in $(seq 1 100); do
        grep -q " $T/m.raw fuse" /proc/mounts && break
        sleep 0.05
    done
    before=$(stat -c %s "$T/m.raw")
    truncate -s "$size" "$T/m.raw" 2>"$T/err" && fail "$what was accepted"
    expect_eq "$(stat -c %s "$T/m.raw")" "$before" "$what: size after the refusal"
    fusermount3 -u "$T/m.raw"
    wait "$pid" || true
    grep -q "$(basename "$img").*$pat" "$T/log" ||
        fail "$what: no clear message: $(cat "$T/log" "$T/err")"
}

descsize() {  # the descriptor's sectors for extent line N (1-based)
    strings "$1" | grep -E '^(RW|RDONLY) ' | sed -n "${2}p" | awk '{print $2}'
}

img=$T/s.vmdk shadow=$T/s.shadow
qemu-img create -q -f vmdk "$img" 8M
qemu-io -f vmdk -c "write -P 0x5c 0 5M" -c "write -P 0x5d 7M 1M" "$img" >/dev/null
qemu-img convert -f vmdk -O raw "$img" "$shadow"
step "$img" "$shadow" $((100 << 20)) "monolithicSparse grow in the directory's sector"
expect_eq "$(descsize "$img" 1)" $((100 << 11)) "descriptor extent size"
cyl=$(strings "$img" | sed -n 's/^ddb.geometry.cylinders = "\(.*\)"/\1/p')
expect_eq "$cyl" 203 "descriptor cylinders (16 heads, 63 sectors)"
# 4 GiB + 1 MiB needs 129 directory entries: directory and copy move
step "$img" "$shadow" $(((4 << 30) + (1 << 20))) "monolithicSparse grow, directory moved"
qemu-io -f vmdk -c "write -P 0x71 4G 512k" "$img" >/dev/null
qemu-io -f raw -c "write -P 0x71 4G 512k" "$shadow" >/dev/null
step "$img" "$shadow" $(((5 << 30) + 4096 + 512)) "grow after the move, unaligned"
refuse "$img" $((10 << 20)) "a vmdk shrink" "cannot shrink.*vmdk images cannot shrink"
refuse "$img" $(((5 << 30) + 4096 + 612)) "a size in bytes" "whole number of 512-byte sectors"

img=$T/f.vmdk shadow=$T/f.shadow
qemu-img create -q -f vmdk -o subformat=monolithicFlat "$img" 4M
qemu-io -f vmdk -c "write -P 0x3c 0 4M" "$img" >/dev/null
qemu-img convert -f vmdk -O raw "$img" "$shadow"
step "$img" "$shadow" $((64 << 20)) "monolithicFlat grow"
expect_eq "$(stat -c %s "$T/f-flat.vmdk")" $((64 << 20)) "flat file size"
expect_eq "$(descsize "$img" 1)" $((64 << 11)) "flat descriptor extent size"

img=$T/t.vmdk shadow=$T/t.shadow
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat "$img" 3G
qemu-io -f vmdk -c "write -P 0x21 2047M 2M" "$img" >/dev/null
qemu-img convert -f vmdk -O raw -S 64k "$img" "$shadow"
step "$img" "$shadow" $((3 << 30 | 64 << 20)) "twoGbMaxExtentFlat grow"
expect_eq "$(descsize "$img" 2)" $(((1 << 30 | 64 << 20) / 512)) "second extent size"
refuse "$img" $((5 << 30)) "a twoGb extent past 2 GiB" "would pass 2 GiB"

img=$T/ts.vmdk shadow=$T/ts.shadow
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$img" 2100M
qemu-io -f vmdk -c "write -P 0x22 2047M 2M" "$img" >/dev/null
qemu-img convert -f vmdk -O raw -S 64k "$img" "$shadow"
step "$img" "$shadow" $((2200 << 20)) "twoGbMaxExtentSparse grow"

img=$T/so.vmdk
qemu-img create -q -f vmdk -o subformat=streamOptimized "$img" 4M
refuse "$img" $((8 << 20)) "a streamOptimized grow" "streamOptimized vmdk .*cannot be resized"
echo "ok"
