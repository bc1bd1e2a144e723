#!/bin/bash
# vhdx resize through a --growable mount, through the log: grow and shrink
# (the BAT entries past the smaller end cleared, the virtual size item
# rewritten last), on dynamic and fixed images. After each step qemu-img
# reads the same virtual size and bytes as a raw shadow given the same
# truncate and writes, `qemu-img check` finds no errors, and QEMU can
# still write the image. (QEMU cannot resize vhdx: the shadow is the
# oracle.)
. "$(dirname "$0")/../lib.sh"

vsize() {
    qemu-img info -f vhdx --output=json "$1" |
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
    qemu-img check -f vhdx "$img" >"$T/check" 2>&1 ||
        fail "$what: qemu-img check: $(cat "$T/check")"
    # (through qcow2 copies: qemu-img compare of a vhdx with a sparse raw
    # file of 40 GiB takes a minute, the conversions a few seconds)
    qemu-img convert -f vhdx -O qcow2 "$img" "$T/img.qcow2"
    qemu-img convert -f raw -O qcow2 "$shadow" "$T/shadow.qcow2"
    qemu-img compare -q "$T/img.qcow2" "$T/shadow.qcow2" ||
        fail "$what: qemu-img reads other bytes than the shadow"
    rm -f "$T/img.qcow2" "$T/shadow.qcow2"
}

for sub in dynamic fixed; do
    img=$T/$sub.vhdx shadow=$T/$sub.shadow
    qemu-img create -q -f vhdx -o subformat=$sub,block_size=1M "$img" 8M
    qemu-io -f vhdx -c "write -P 0x5c 0 5M" "$img" >/dev/null
    qemu-img convert -f vhdx -O raw "$img" "$shadow"
    step "$img" "$shadow" $((100 << 20)) "$sub grow" mark
    step "$img" "$shadow" $((3 * 1048576 + 7 * 512)) "$sub shrink into a block"
    step "$img" "$shadow" $((6 << 20)) "$sub grow over the cut block" mark
    [ $sub = dynamic ] || continue
    # more BAT entries than one log entry's 64 sectors hold
    step "$img" "$shadow" $((40 << 30)) "$sub grow to 40 GiB" mark
    qemu-io -f vhdx -c "write -P 0x71 $((30 << 30)) 2M" "$img" >/dev/null
    qemu-io -f raw -c "write -P 0x71 $((30 << 30)) 2M" "$shadow" >/dev/null
    step "$img" "$shadow" $((5 << 20)) "$sub shrink after QEMU wrote"
done

# a differencing vhdx has its parent's size: refused, unchanged
qemu-img create -q -f vhdx "$T/base.vhdx" 8M
"$IMGFUSE" create -F vhdx -o parent="$T/base.vhdx" "$T/diff.vhdx" 0 >/dev/null
mount_img --growable "$T/diff.vhdx" "$T/d.raw"
truncate -s 16M "$T/d.raw" 2>/dev/null && fail "a differencing vhdx grew"
expect_eq "$(stat -c %s "$T/d.raw")" $((8 << 20)) "refused resize: size"
unmount_img "$T/d.raw"
"$IMGFUSE" info "$T/diff.vhdx" 2>&1 | grep -q "virtual size: 8 MiB" ||
    fail "differencing vhdx after the refusal: $("$IMGFUSE" info "$T/diff.vhdx" 2>&1)"
