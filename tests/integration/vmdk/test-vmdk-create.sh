#!/bin/bash
# `imgfuse create -F vmdk` with every subformat and option makes images that
# qemu-img accepts (info, check) and that read back right after random
# writes through the mount; compat6 with hwversion is refused; a child made
# with backing_file reads through to its parent and takes writes.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/vmdk-lib.sh"

cd "$T"
create() { "$IMGFUSE" create -F vmdk "$@" >/dev/null; }

# options: each lands in the descriptor or header as qemu-img reads it
create -o subformat=monolithicSparse,adapter_type=lsilogic,hwversion=7,toolsversion=10240 \
    opt1.vmdk 100M
qemu-img info --output=json opt1.vmdk >info.json
grep -q '"create-type": "monolithicSparse"' info.json || fail "opt1: $(cat info.json)"
grep -a -q 'ddb.adapterType = "lsilogic"' opt1.vmdk || fail "adapter_type not written"
grep -a -q 'ddb.virtualHWVersion = "7"' opt1.vmdk || fail "hwversion not written"
grep -a -q 'ddb.toolsVersion = "10240"' opt1.vmdk || fail "toolsversion not written"
create -o compat6=on opt2.vmdk 10M
grep -a -q 'ddb.virtualHWVersion = "6"' opt2.vmdk || fail "compat6 not written"
create -o zeroed_grain=on opt3.vmdk 10M
expect_eq "$(od -An -tu4 -j4 -N4 opt3.vmdk | tr -d ' ')" 2 "zeroed_grain header version"
for f in opt1 opt2 opt3; do
    qemu-img check -q $f.vmdk || fail "$f: qemu-img check"
done

rc=0
"$IMGFUSE" create -F vmdk -o compat6=on,hwversion=7 bad.vmdk 10M 2>err || rc=$?
[ $rc -ne 0 ] && grep -q "compat6 and hwversion cannot be used together" err ||
    fail "compat6+hwversion: rc=$rc $(cat err)"
[ ! -e bad.vmdk ] || fail "refused create left bad.vmdk behind"
rc=0
"$IMGFUSE" create -F vmdk -o subformat=monolithicSparce bad.vmdk 10M 2>err || rc=$?
[ $rc -ne 0 ] && grep -q "not one of" err || fail "bad subformat: $(cat err)"

# each subformat: qemu-img check/info clean, then writes through the mount
for sf in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat; do
    create -o subformat=$sf c-$sf.vmdk 48M
    qemu-img check -q c-$sf.vmdk || fail "$sf: fresh image fails qemu-img check"
    expect_eq "$(qemu-img info --output=json c-$sf.vmdk | grep -o '"virtual-size": [0-9]*' | head -1)" \
        '"virtual-size": 50331648' "$sf virtual size"
    truncate -s 48M shadow-$sf
    mount_img c-$sf.vmdk "$T/mnt-$sf"
    random_writes "$T/mnt-$sf" shadow-$sf 11 150
    unmount_img "$T/mnt-$sf"
    qemu-img check -q c-$sf.vmdk || fail "$sf: qemu-img check after writes"
    qemu-img compare -q -f vmdk -F raw c-$sf.vmdk shadow-$sf || fail "$sf: differs from shadow"
    note "$sf ok"
done
ls c-twoGbMaxExtentFlat-f001.vmdk c-twoGbMaxExtentSparse-s001.vmdk >/dev/null

# a child with backing_file: size from the parent, parentCID = parent's CID
qemu-img convert -O vmdk c-monolithicSparse.vmdk base.vmdk
create -o backing_file=base.vmdk child.vmdk 0
# as numbers: qemu-img writes a CID without leading zeros, we write 8 digits
expect_eq "$((16#$(grep -a -o -m1 'parentCID=[0-9a-f]*' child.vmdk | cut -d= -f2)))" \
    "$((16#$(cid_of base.vmdk | cut -d= -f2)))" "child parentCID"
qemu-img check -q child.vmdk || fail "child: qemu-img check"
cp shadow-monolithicSparse shadow-child
mount_img child.vmdk "$T/mnt-child"
expect_eq "$(sha "$T/mnt-child")" "$(sha shadow-child)" "child reads through to the parent"
random_writes "$T/mnt-child" shadow-child 12 100
unmount_img "$T/mnt-child"
qemu-img check -q child.vmdk || fail "child: qemu-img check after writes"
qemu-img compare -q child.vmdk shadow-child || fail "child differs from shadow"
qemu-img compare -q base.vmdk shadow-monolithicSparse || fail "writes reached the parent"

# zeroed_grain: zeroing whole grains (fallocate) marks them zero in the
# grain table instead of writing data; qemu-img map reports them as zero
head -c 10M /dev/urandom >shadow-zg
mount_img opt3.vmdk "$T/mnt-zg"
dd if=shadow-zg of="$T/mnt-zg" bs=1M conv=notrunc 2>/dev/null
fallocate -z -o 1000000 -l 3000000 "$T/mnt-zg"
fallocate -z -o 1000000 -l 3000000 shadow-zg
cmp "$T/mnt-zg" shadow-zg || fail "zeroed range reads back wrong"
unmount_img "$T/mnt-zg"
qemu-img check -q opt3.vmdk || fail "zeroed_grain: qemu-img check"
qemu-img compare -q -f vmdk -F raw opt3.vmdk shadow-zg || fail "zeroed_grain: differs from shadow"
qemu-img map --output=json opt3.vmdk | grep -q '"start": 1048576, "length": 2949120, "depth": 0, "present": true, "zero": true, "data": false' ||
    fail "zeroed grains not reported as zero: $(qemu-img map --output=json opt3.vmdk | head -5)"
