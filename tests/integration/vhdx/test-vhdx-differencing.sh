#!/bin/bash
# Differencing images (imgfuse create -o parent=...): partial-block writes
# land in sector bitmaps, the rest reads through the parent, which stays
# untouched; a chain of three reads right; SEEK_DATA/HOLE follow the chain.
# qemu cannot open differencing vhdx, so libvhdi (python3-libvhdi) is the
# second reader: it must see the same bytes, also for 4 KiB sectors.
. "$(dirname "$0")/../lib.sh"
LIB="python3 $(dirname "$0")/vhdx-lib.py"
VHDI="/usr/bin/python3 $(dirname "$0")/vhdx-lib.py vhdi"
/usr/bin/python3 -c "import pyvhdi" || fail "python3-libvhdi is not installed"
mkdir "$T/d" "$T/d/sub"

# base: qemu-made, with data in some places
truncate -s 40M "$T/shadow.raw"
head -c 3M /dev/urandom | dd of="$T/shadow.raw" bs=1M seek=2 conv=notrunc status=none
head -c 1M /dev/urandom | dd of="$T/shadow.raw" bs=1M seek=30 conv=notrunc status=none
qemu-img convert -f raw -O vhdx -o subformat=dynamic "$T/shadow.raw" "$T/d/base.vhdx"
base_sha=$(sha "$T/d/base.vhdx")

# mid in a subdirectory: its parent path is relative (..\base.vhdx)
"$IMGFUSE" create -F vhdx -o parent="$T/d/base.vhdx" "$T/d/sub/mid.vhdx" 0 >/dev/null
"$IMGFUSE" info "$T/d/sub/mid.vhdx" | grep -q 'parent relative path: ..\\base.vhdx' ||
    fail "mid: parent path: $("$IMGFUSE" info "$T/d/sub/mid.vhdx")"
mount_img "$T/d/sub/mid.vhdx" "$T/mid.raw"
cmp -s "$T/mid.raw" "$T/shadow.raw" || fail "fresh child does not read as its parent"
$LIB randwrite "$T/mid.raw" "$T/shadow.raw" 1 40
cmp -s "$T/mid.raw" "$T/shadow.raw" || fail "mid: reads differ from the shadow"
unmount_img "$T/mid.raw"
expect_eq "$(sha "$T/d/base.vhdx")" "$base_sha" "the parent was written"

# top over mid, written again; then everything read back read-only
"$IMGFUSE" create -F vhdx -o parent="$T/d/sub/mid.vhdx",block_size=1M "$T/d/top.vhdx" 40M >/dev/null
mount_img "$T/d/top.vhdx" "$T/top.raw"
$LIB randwrite "$T/top.raw" "$T/shadow.raw" 2 40
unmount_img "$T/top.raw"
mount_img -r "$T/d/top.vhdx" "$T/top.raw"
cmp -s "$T/top.raw" "$T/shadow.raw" || fail "top: reads differ from the shadow"
holes=$($LIB holes "$T/top.raw" "$T/shadow.raw")
note "chain of three reads right ($holes holes)"
unmount_img "$T/top.raw"
$VHDI "$T/d/top.vhdx" "$T/vhdi.raw" "$T/d/sub/mid.vhdx" "$T/d/base.vhdx"
cmp -s "$T/vhdi.raw" "$T/shadow.raw" || fail "libvhdi reads the chain differently"

# 4 KiB logical sectors: base and child, written through mounts
"$IMGFUSE" create -F vhdx -o logical_sector_size=4096,block_size=2M "$T/d/k.vhdx" 24M >/dev/null
truncate -s 24M "$T/kshadow.raw"
mount_img "$T/d/k.vhdx" "$T/k.raw"
$LIB randwrite "$T/k.raw" "$T/kshadow.raw" 3 20
unmount_img "$T/k.raw"
# (the child after the parent's writes: a parent written later no longer
# matches the child's parent_linkage, and Windows and libvhdi refuse it)
"$IMGFUSE" create -F vhdx -o parent="$T/d/k.vhdx" "$T/d/kc.vhdx" 0 >/dev/null
$VHDI "$T/d/k.vhdx" "$T/vhdi.raw"
cmp -s "$T/vhdi.raw" "$T/kshadow.raw" || fail "libvhdi reads the 4k image differently"
mount_img "$T/d/kc.vhdx" "$T/kc.raw"
$LIB randwrite "$T/kc.raw" "$T/kshadow.raw" 4 20
unmount_img "$T/kc.raw"
$VHDI "$T/d/kc.vhdx" "$T/vhdi.raw" "$T/d/k.vhdx"
cmp -s "$T/vhdi.raw" "$T/kshadow.raw" || fail "libvhdi reads the 4k child differently"
note "4 KiB sectors: libvhdi agrees"

# the parent is looked up relative to the child, wherever we are
(cd / && "$IMGFUSE" info "$T/d/top.vhdx" >/dev/null) || fail "info from /"
# a missing parent is a clear error
mv "$T/d/base.vhdx" "$T/d/base.moved"
if mount_img -r "$T/d/top.vhdx" "$T/x.raw" 2>"$T/err"; then fail "missing parent accepted"; fi
grep -q "base.vhdx" "$T/err" || fail "missing parent message: $(cat "$T/err")"
note "missing parent: $(head -1 "$T/err")"
# a parent of a different size is refused at create
if "$IMGFUSE" create -F vhdx -o parent="$T/d/top.vhdx" "$T/d/bad.vhdx" 1G 2>"$T/err"; then
    fail "wrong size accepted"
fi
grep -q "parent's size" "$T/err" || fail "size message: $(cat "$T/err")"
echo ok
