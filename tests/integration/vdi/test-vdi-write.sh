#!/bin/bash
# Writes through the mount: random writes (one writer, then four racing for
# the same blocks) mirrored into a shadow leave dynamic and static VDIs that
# qemu-img check finds clean and qemu-img compare finds equal to the shadow;
# imgfuse create -F vdi matches qemu-img create; cp of a raw file into a
# fresh mount reads back in qemu.
. "$(dirname "$0")/../lib.sh"

qemu_clean() {
    qemu-img check -f vdi "$1" >"$T/check.out" 2>&1 ||
        fail "$2: qemu-img check: $(cat "$T/check.out")"
}

# VirtualBox's own image, then qemu-made ones of both kinds
zcat "$DATA/vdi/basic.vdi.gz" >"$T/basic.vdi"
for name in basic dynamic static; do
    img=$T/$name.vdi
    case $name in
    dynamic) qemu-img create -q -f vdi -o static=off "$img" 37M ;;
    static) qemu-img create -q -f vdi -o static=on "$img" 37M ;;
    esac
    qemu-img convert -f vdi -O raw "$img" "$T/$name.shadow"
    mount_img "$img" "$T/mnt-$name"
    mirror_writes "$T/mnt-$name" "$T/$name.shadow" 3 120
    unmount_img "$T/mnt-$name"
    qemu_clean "$img" "$name"
    "$IMGFUSE" check "$img" >/dev/null || fail "$name: imgfuse check"
    qemu-img compare -q -f vdi -F raw "$img" "$T/$name.shadow" ||
        fail "$name: qemu-img compare finds the image differs from the shadow"
    note "$name: ok"
done

# concurrent allocation of the same blocks from several writers
qemu-img create -q -f vdi "$T/par.vdi" 40M
qemu-img convert -f vdi -O raw "$T/par.vdi" "$T/par.shadow"
mount_img "$T/par.vdi" "$T/mnt-par"
mirror_parallel_writes "$T/mnt-par" "$T/par.shadow" || fail "parallel writers failed"
unmount_img "$T/mnt-par"
qemu_clean "$T/par.vdi" parallel
qemu-img compare -q -f vdi -F raw "$T/par.vdi" "$T/par.shadow" ||
    fail "parallel writes: the image differs from the shadow"
note "parallel: ok"

# imgfuse create against qemu-img create, and cp into a fresh mount
head -c 3M /dev/urandom >"$T/src.raw"
truncate -s 9M "$T/src.raw"
head -c 2M /dev/urandom >>"$T/src.raw"
size=$(stat -c %s "$T/src.raw")
for opts in static=off static=on; do
    rm -f "$T/ours.vdi" "$T/theirs.vdi"
    "$IMGFUSE" create -F vdi -o "$opts" "$T/ours.vdi" 37M >/dev/null
    qemu-img create -q -f vdi -o "$opts" "$T/theirs.vdi" 37M
    expect_eq "$(stat -c %s "$T/ours.vdi")" "$(stat -c %s "$T/theirs.vdi")" \
        "$opts: file size"
    qemu_clean "$T/ours.vdi" "$opts"
    # same header fields (past the text line, except the two uuids) and map
    python3 - "$T/ours.vdi" "$T/theirs.vdi" <<'PY' || fail "$opts: header differs from qemu's"
import sys
a, b = (open(f, 'rb').read(4096) for f in sys.argv[1:3])
same = lambda lo, hi: a[lo:hi] == b[lo:hi]
sys.exit(0 if same(0x40, 0x188) and same(0x1a8, 0x200) and same(0x200, 0x400) else 1)
PY
    rm -f "$T/ours.vdi"
    mount_img --create "$size" --create-opts "$opts" -F vdi "$T/ours.vdi" "$T/new.raw"
    cp "$T/src.raw" "$T/new.raw"
    unmount_img "$T/new.raw"
    qemu_clean "$T/ours.vdi" "$opts after cp"
    qemu-img compare -q -f vdi -F raw "$T/ours.vdi" "$T/src.raw" ||
        fail "$opts: cp into a new mount differs"
    qemu-img info -f vdi "$T/ours.vdi" | grep -q "^virtual size.*($size bytes)" ||
        fail "$opts: virtual size"
    note "create $opts: ok"
done
