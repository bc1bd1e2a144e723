#!/bin/bash
# Internal snapshots: --snapshot mounts one read-only; a directory mount
# shows every snapshot as NAME@SNAPSHOT.raw beside NAME.raw. Oracle:
# qemu-img convert -l snapshot.name=...
. "$(dirname "$0")/../lib.sh"

img=$T/snaps.qcow2
qemu-img create -q -f qcow2 "$img" 4M
qemu-io -f qcow2 -c 'write -P 1 0 1M' "$img" >/dev/null
qemu-img snapshot -c first "$img"
qemu-io -f qcow2 -c 'write -P 2 512k 1M' "$img" >/dev/null
qemu-img snapshot -c second "$img"
qemu-io -f qcow2 -c 'write -P 3 2M 64k' "$img" >/dev/null
for s in first second; do
    qemu-img convert -f qcow2 -O raw -l snapshot.name=$s "$img" "$T/$s.ref"
done
qemu-img convert -f qcow2 -O raw "$img" "$T/active.ref"

mount_img --snapshot first "$img" "$T/one.raw"
cmp "$T/one.raw" "$T/first.ref" || fail "--snapshot first content"
if printf x | dd of="$T/one.raw" conv=notrunc status=none 2>/dev/null; then
    fail "a snapshot mount was writable"
fi
unmount_img "$T/one.raw"

mkdir "$T/dir"
mount_img "$img" "$T/dir"
expect_eq "$(ls "$T/dir" | tr '\n' ' ')" "snaps.raw snaps@first.raw snaps@second.raw " "listing"
cmp "$T/dir/snaps@first.raw" "$T/first.ref" || fail "first in directory mode"
cmp "$T/dir/snaps@second.raw" "$T/second.ref" || fail "second in directory mode"
cmp "$T/dir/snaps.raw" "$T/active.ref" || fail "active image in directory mode"
# the active image stays writable, the snapshots do not
printf 'new' | dd of="$T/dir/snaps.raw" conv=notrunc status=none
if printf x | dd of="$T/dir/snaps@first.raw" conv=notrunc status=none 2>/dev/null; then
    fail "a snapshot entry was writable"
fi
unmount_img "$T/dir"
qemu-img check -q "$img" || fail "qemu-img check after directory mount"
qemu-img convert -f qcow2 -O raw -l snapshot.name=first "$img" "$T/first.after"
cmp "$T/first.after" "$T/first.ref" || fail "snapshot changed by a write to the active image"
expect_eq "$(qemu-io -f qcow2 -c 'read -P 0x6e 0 1' "$img" | grep -c 'read 1/1')" 1 "active write"

if "$IMGFUSE" --snapshot nosuch "$img" "$T/x.raw" 2>"$T/err"; then fail "missing snapshot mounted"; fi
grep -q "no snapshot with id or name 'nosuch'" "$T/err" || fail "message: $(cat "$T/err")"
echo ok
