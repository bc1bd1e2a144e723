#!/bin/bash
# mount -t fuse.imgfuse and an /etc/fstab-style line work through
# mount.fuse3, with imgfuse options inside -o.
. "$(dirname "$0")/../lib.sh"

# mount(8) runs helpers with a clean PATH, so imgfuse must be installed
# where it looks; use the binary under test there for the test's length.
link=/usr/local/sbin/imgfuse
[ -e "$link" ] && [ ! -L "$link" ] && { echo "$link exists and is not ours"; exit 1; }
ln -sfn "$IMGFUSE" "$link"
trap 'rm -f "$link"; _cleanup' EXIT
img=$T/disk.img
qemu-img create -q -f raw "$img" 8M
qemu-io -f raw -c 'write -P 0x61 0 4k' "$img" >/dev/null

touch "$T/m1"
_MOUNTS+=("$T/m1")
mount -t fuse.imgfuse -o ro,format=raw,locking=on,allow_other "$img" "$T/m1" \
    || fail "mount -t fuse.imgfuse failed"
is_mounted "$T/m1" || fail "not mounted"
expect_eq "$(head -c 4 "$T/m1")" aaaa "content through mount(8)"
grep " $T/m1 " /proc/mounts | grep -q "ro," || fail "not read-only: $(grep " $T/m1 " /proc/mounts)"
if printf x | dd of="$T/m1" conv=notrunc status=none 2>/dev/null; then fail "ro ignored"; fi
umount "$T/m1"

# an fstab line, mounted by its mountpoint. mount(8) itself takes offset=
# and size= in the options field (loop devices), so a slice goes in SOURCE.
mkdir "$T/dir"
cat > "$T/fstab" <<FSTAB
driver=raw,file.filename=$img,offset=4096,size=1M  $T/dir  fuse.imgfuse  noauto,discard=ignore  0 0
FSTAB
_MOUNTS+=("$T/dir")
mount --fstab "$T/fstab" "$T/dir" || fail "mount from an fstab line failed"
expect_eq "$(ls "$T/dir")" disk.raw "fstab mount content"
expect_eq "$(stat -c %s "$T/dir/disk.raw")" 1048576 "fstab slice size"
umount "$T/dir"

# a misspelt option in fstab is reported by name
cat > "$T/fstab" <<FSTAB
$img  $T/dir  fuse.imgfuse  noauto,formt=raw  0 0
FSTAB
if mount --fstab "$T/fstab" "$T/dir" 2>"$T/err"; then fail "bad fstab option mounted"; fi
grep -q "formt" "$T/err" || fail "bad option message: $(cat "$T/err")"
echo ok
