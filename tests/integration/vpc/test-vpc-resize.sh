#!/bin/bash
# vpc resize through a --growable mount: dynamic disks grow (BAT widened in
# its padding, or rewritten at the end of the file) and shrink, fixed disks
# grow and shrink their data; after each step qemu-img reads the same
# virtual size and the same bytes as a raw shadow given the same truncate
# and writes, and `imgfuse check` finds the image clean. (QEMU cannot
# resize vpc images, so the shadow is the oracle.) Differencing disks and
# sizes that are not whole sectors are refused with a clear error.
. "$(dirname "$0")/../lib.sh"

vsize() {
    qemu-img info -f vpc --output=json "$1" |
        sed -n 's/^ *"virtual-size": \([0-9]*\),*$/\1/p'
}

# step IMAGE SHADOW SIZE WHAT: truncate both to SIZE, then write a marker
# in the last 3000 bytes of both, and compare through qemu-img
step() {
    local img=$1 shadow=$2 size=$3 what=$4
    mount_img --growable -F vpc "$img" "$T/m.raw"
    truncate -s "$size" "$T/m.raw"
    expect_eq "$(stat -c %s "$T/m.raw")" "$size" "$what: size on the mount"
    printf '%s' "$what" | dd of="$T/m.raw" bs=1 seek=$((size - 3000)) \
        conv=notrunc status=none
    unmount_img "$T/m.raw"
    truncate -s "$size" "$shadow"
    printf '%s' "$what" | dd of="$shadow" bs=1 seek=$((size - 3000)) \
        conv=notrunc status=none
    expect_eq "$(vsize "$img")" "$size" "$what: qemu-img virtual size"
    "$IMGFUSE" check -F vpc "$img" >"$T/check" 2>&1 ||
        fail "$what: imgfuse check: $(cat "$T/check")"
    qemu-img compare -q -f vpc -F raw "$img" "$shadow" ||
        fail "$what: qemu-img reads other bytes than the shadow"
}

for sub in dynamic fixed; do
    img=$T/$sub.vhd shadow=$T/$sub.shadow
    qemu-img create -q -f vpc -o subformat=$sub "$img" 8M
    qemu-io -f vpc -c "write -P 0x5c 0 $(vsize "$img")" "$img" >/dev/null
    qemu-img convert -f vpc -O raw "$img" "$shadow"
    step "$img" "$shadow" $((100 << 20)) "$sub grow"
    step "$img" "$shadow" $((3 * 1048576 + 7 * 512)) "$sub shrink, unaligned"
    [ $sub = dynamic ] || continue
    step "$img" "$shadow" $((6 << 20)) "$sub grow over the cut block"
    # 1 GiB needs 512 BAT entries: more than the padding holds
    before=$(stat -c %s "$img")
    step "$img" "$shadow" $((1 << 30)) "$sub grow past the BAT's room"
    after=$(stat -c %s "$img")
    [ "$after" -gt "$before" ] && [ "$after" -lt $((before + 8 << 20)) ] ||
        fail "BAT rewrite: file went from $before to $after bytes"
    qemu-io -f vpc -c "write -P 0x71 $((900 << 20)) 3M" "$img" >/dev/null
    qemu-io -f raw -c "write -P 0x71 $((900 << 20)) 3M" "$shadow" >/dev/null
    step "$img" "$shadow" $((950 << 20)) "$sub shrink after QEMU wrote"
done

# Hyper-V style sizes (not a CHS multiple) survive: the footer is marked
# to be read by current size, and both readers agree
qemu-img create -q -f vpc "$T/h.vhd" 8M
qemu-img convert -f vpc -O raw "$T/h.vhd" "$T/h.shadow"
step "$T/h.vhd" "$T/h.shadow" $((10 * 1048576 + 512)) "size not a CHS multiple"

# refusals: not whole sectors, differencing disks
mount_img --growable "$T/dynamic.vhd" "$T/m.raw"
truncate -s $((5 << 20 | 100)) "$T/m.raw" 2>"$T/err" &&
    fail "a size that is not whole sectors was accepted"
unmount_img "$T/m.raw"
qemu-img create -q -f vpc "$T/base.vhd" 8M
qemu-img create -q -f vpc "$T/diff.vhd" 8M
python3 "$(dirname "$0")/mkdiff.py" "$T/diff.vhd" "$T/base.vhd" base.vhd base.vhd
mount_img --growable "$T/diff.vhd" "$T/d.raw"
truncate -s 16M "$T/d.raw" 2>/dev/null && fail "a differencing vhd grew"
unmount_img "$T/d.raw"
"$IMGFUSE" info "$T/diff.vhd" 2>&1 | grep -q "virtual size: 8 MiB" ||
    fail "refused resize changed the differencing vhd"
