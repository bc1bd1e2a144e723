#!/bin/bash
# --overlay=FILE|temp and -o snapshot: the source (qcow2, a read-only dmg,
# a vhd whose footer checksum is stale) is opened read-only and never
# written (sha256 unchanged), the mount is writable, writes land in a qcow2
# overlay that qemu-img reads, names the source by its absolute path and
# format, and is reused by the next mount; temp overlays leave nothing.
. "$(dirname "$0")/../lib.sh"

mkdir -p "$T/m" "$T/tmp" "$T/sub"
head -c 65536 /dev/urandom > "$T/rand"

# overlay_check SOURCE FORMAT OVERLAY: what qemu-img says of the overlay
overlay_check() {
    qemu-img info -U --output=json "$3" | python3 -c '
import json, os, sys
d = json.load(sys.stdin)
assert d["format"] == "qcow2", d
assert d["backing-filename"] == os.path.realpath(sys.argv[1]), d
assert d["backing-filename-format"] == sys.argv[2], d
' "$1" "$2" || fail "overlay $3 of $1: $(qemu-img info -U "$3")"
}

# ---- qcow2 source; the overlay made from a relative SOURCE path ----
qemu-img create -q -f qcow2 "$T/src.qcow2" 8M
qemu-io -f qcow2 -c "write -P 0xaa 0 1M" "$T/src.qcow2" >/dev/null
sum=$(sha "$T/src.qcow2")
(cd "$T" && mount_img --overlay=sub/ov.qcow2 src.qcow2 "$T/m/d.raw")
dd if="$T/rand" of="$T/m/d.raw" bs=64k seek=32 conv=notrunc status=none
cmp <(dd if="$T/m/d.raw" bs=64k skip=32 count=1 status=none) "$T/rand" || fail "read back"
cmp <(dd if="$T/m/d.raw" bs=1M count=1 status=none) <(head -c 1M /dev/zero | tr '\0' '\252') ||
    fail "source data not seen through the overlay"
unmount_img "$T/m/d.raw"
expect_eq "$(sha "$T/src.qcow2")" "$sum" "qcow2 source after a writable overlay mount"
overlay_check "$T/src.qcow2" qcow2 "$T/sub/ov.qcow2"
expect_eq "$(qemu-img info --backing-chain --output=json "$T/sub/ov.qcow2" | python3 -c \
    'import json,sys; print(len(json.load(sys.stdin)))')" 2 "qemu-img's backing chain"
qemu-img convert -O raw "$T/src.qcow2" "$T/shadow.raw"
dd if="$T/rand" of="$T/shadow.raw" bs=64k seek=32 conv=notrunc status=none
qemu-img compare -q -f qcow2 -F raw "$T/sub/ov.qcow2" "$T/shadow.raw" ||
    fail "qemu-img reads the overlay differently from what was written"
# reused: what was written is there, more writes go to it
mount_img --overlay="$T/sub/ov.qcow2" "$T/src.qcow2" "$T/m/d.raw"
cmp <(dd if="$T/m/d.raw" bs=64k skip=32 count=1 status=none) "$T/rand" || fail "reused overlay"
dd if="$T/rand" of="$T/m/d.raw" bs=64k seek=64 conv=notrunc status=none
unmount_img "$T/m/d.raw"
expect_eq "$(sha "$T/src.qcow2")" "$sum" "qcow2 source after the second mount"
# an overlay of another image is refused
qemu-img create -q -f qcow2 "$T/other.qcow2" 8M
! "$IMGFUSE" --overlay="$T/sub/ov.qcow2" "$T/other.qcow2" "$T/m/x.raw" 2>"$T/err" ||
    fail "an overlay of src.qcow2 was used over other.qcow2"
expect_err "was made for the image $T/src.qcow2"
! "$IMGFUSE" --overlay="$T/src.qcow2" "$T/src.qcow2" "$T/m/x.raw" 2>"$T/err" ||
    fail "the source was its own overlay"
expect_err "is the source image itself"
expect_eq "$(sha "$T/src.qcow2")" "$sum" "qcow2 source after the refusals"

# ---- a read-only format (dmg): writable through the overlay ----
cp "$SHARED_IMAGES/public/qemu-iotests/simple-dmg.dmg" "$T/s.dmg"
sum=$(sha "$T/s.dmg")
mount_img --overlay="$T/dmg-ov.qcow2" "$T/s.dmg" "$T/m/dmg.raw"
dd if="$T/rand" of="$T/m/dmg.raw" bs=64k seek=3 conv=notrunc status=none
unmount_img "$T/m/dmg.raw"
expect_eq "$(sha "$T/s.dmg")" "$sum" "dmg source"
overlay_check "$T/s.dmg" dmg "$T/dmg-ov.qcow2"
qemu-img convert -O raw "$T/s.dmg" "$T/shadow.raw"
dd if="$T/rand" of="$T/shadow.raw" bs=64k seek=3 conv=notrunc status=none
qemu-img compare -q -f qcow2 -F raw "$T/dmg-ov.qcow2" "$T/shadow.raw" ||
    fail "the dmg overlay as qemu reads it"

# ---- a vhd with a stale footer checksum (qemu refuses it), temp overlay ----
zcat "$DATA/vpc/image.vhd.gz" > "$T/image.vhd"
sum=$(sha "$T/image.vhd")
for how in --overlay=temp "-o snapshot"; do
    # shellcheck disable=SC2086
    TMPDIR=$T/tmp mount_img $how "$T/image.vhd" "$T/m/vhd.raw" 2>/dev/null
    before=$(sha "$T/m/vhd.raw")
    dd if="$T/rand" of="$T/m/vhd.raw" bs=32k seek=1 count=1 conv=notrunc status=none
    cmp <(dd if="$T/m/vhd.raw" bs=32k skip=1 count=1 status=none) <(head -c 32k "$T/rand") ||
        fail "$how: read back"
    expect_eq "$(ls -A "$T/tmp")" "" "$how: files left in TMPDIR while mounted"
    unmount_img "$T/m/vhd.raw"
    expect_eq "$(ls -A "$T/tmp")" "" "$how: files left in TMPDIR"
    expect_eq "$(sha "$T/image.vhd")" "$sum" "$how: vhd source"
done
mount_img --overlay="$T/vhd-ov.qcow2" "$T/image.vhd" "$T/m/vhd.raw" 2>/dev/null
expect_eq "$(sha "$T/m/vhd.raw")" "$before" "the vhd through a new overlay (temp writes gone)"
unmount_img "$T/m/vhd.raw"
overlay_check "$T/image.vhd" vpc "$T/vhd-ov.qcow2"
expect_eq "$(sha "$T/image.vhd")" "$sum" "vhd source"
echo ok
