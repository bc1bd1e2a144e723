#!/bin/bash
# Writes through the mount: random writes (one writer, then four racing for
# the same blocks) mirrored into a shadow file leave dynamic and fixed VHDs
# that qemu-img compare finds equal to the shadow; a differencing disk keeps
# its parent untouched and reads the overlay back.
. "$(dirname "$0")/../lib.sh"


# write_test NAME CREATE_OPTS FORMAT_ARGS...
write_test() {
    local name=$1 opts=$2 img=$T/$1.vhd mnt=$T/mnt-$1
    shift 2
    qemu-img create -q -f vpc -o "$opts" "$img" 37M
    qemu-img convert -f vpc -O raw "$img" "$T/$name.shadow"
    mount_img "$@" "$img" "$mnt"
    mirror_writes "$mnt" "$T/$name.shadow" 11 120
    unmount_img "$mnt"
    qemu-img compare -q -f vpc -F raw "$img" "$T/$name.shadow" ||
        fail "$name: qemu-img compare finds the image differs from the shadow"
    # the footer at the start still matches the one at the end
    if [ "$(head -c 8 "$img")" = conectix ]; then
        cmp -s <(head -c 512 "$img") <(tail -c 512 "$img") ||
            fail "$name: the two footer copies differ"
    fi
    note "$name: ok"
}

write_test dynamic subformat=dynamic
write_test dynamic-force subformat=dynamic,force_size=on
write_test fixed subformat=fixed -F vpc

# concurrent allocation of the same blocks from several writers
qemu-img create -q -f vpc "$T/par.vhd" 40M
qemu-img convert -f vpc -O raw "$T/par.vhd" "$T/par.shadow"
mount_img "$T/par.vhd" "$T/mnt-par"
mirror_parallel_writes "$T/mnt-par" "$T/par.shadow" || fail "parallel writers failed"
unmount_img "$T/mnt-par"
qemu-img compare -q -f vpc -F raw "$T/par.vhd" "$T/par.shadow" ||
    fail "parallel writes: the image differs from the shadow"
note "parallel: ok"

# differencing: parent with a pattern, child made by mkdiff.py
head -c 9M /dev/urandom >"$T/pattern.raw"
qemu-img convert -q -f raw -O vpc "$T/pattern.raw" "$T/parent.vhd"
qemu-img create -q -f vpc "$T/child.vhd" 9M
python3 "$(dirname "$0")/mkdiff.py" "$T/child.vhd" "$T/parent.vhd" parent.vhd \
    wrong-name.vhd
parent_sha=$(sha "$T/parent.vhd")
qemu-img convert -f vpc -O raw "$T/parent.vhd" "$T/diff.shadow"
size=$(stat -c %s "$T/diff.shadow")

mnt=$T/mnt-child
mount_img "$T/child.vhd" "$mnt"
expect_eq "$(sha "$mnt")" "$(sha "$T/diff.shadow")" "fresh child reads as parent"
expect_eq "$(stat -c %s "$mnt")" "$size" "child size"
mirror_writes "$mnt" "$T/diff.shadow" 5 80
mirror_parallel_writes "$mnt" "$T/diff.shadow" || fail "parallel writers failed"
unmount_img "$mnt"
expect_eq "$(sha "$T/parent.vhd")" "$parent_sha" "parent is untouched"
mount_img -r "$T/child.vhd" "$mnt"
expect_eq "$(sha "$mnt")" "$(sha "$T/diff.shadow")" "child after writes"
unmount_img "$mnt"
"$IMGFUSE" info "$T/child.vhd" | grep -q "parent.vhd" ||
    fail "info does not name the parent: $("$IMGFUSE" info "$T/child.vhd")"
note "differencing: ok"

# without the parent, the child fails naming what it looked for
mv "$T/parent.vhd" "$T/moved.vhd"
rc=0
mount_img -r "$T/child.vhd" "$T/mnt-orphan" 2>"$T/err" || rc=$?
[ $rc -ne 0 ] || fail "child without its parent mounted"
grep -q "parent image not found.*parent.vhd.*wrong-name.vhd" "$T/err" ||
    fail "orphan child: message '$(cat "$T/err")'"
note "orphan: $(head -1 "$T/err")"
