#!/bin/bash
# `cp` of a raw file into a freshly created streamOptimized mount gives an
# image qemu-img reads back equal (footer and end-of-stream written at
# unmount, zero grains left out); a later mount refuses to overwrite a grain
# with EOPNOTSUPP and still appends new ones.
. "$(dirname "$0")/../lib.sh"

cd "$T"
python3 - <<'PY'
import os
with open("src.raw", "wb") as f:
    f.write(os.urandom(5 << 20))
    f.write(bytes(2 << 20))                     # zero grains: not stored
    f.write(os.urandom(777777))                 # ends inside a grain
PY
size=$(( (8 << 20) ))
mount_img --create $size --create-opts subformat=streamOptimized -F vmdk s.vmdk "$T/mnt"
cp src.raw "$T/mnt"
unmount_img "$T/mnt"
qemu-img check -q s.vmdk || fail "qemu-img check after cp"
qemu-img info s.vmdk | grep -q "create type: streamOptimized" || fail "not a stream image"
cp src.raw want.raw
truncate -s $size want.raw
qemu-img compare -q -f vmdk -F raw s.vmdk want.raw || fail "cp into the mount: qemu reads other data"
# 5 MiB + 777777 bytes of data grains, compressed random data: no zero grains stored
[ "$(stat -c %s s.vmdk)" -lt $(( (6 << 20) + (1 << 19) )) ] || fail "zero grains were stored"
tail -c 512 s.vmdk | cmp -s - <(head -c 512 /dev/zero) || fail "no end-of-stream marker at the end"

mount_img -F vmdk s.vmdk "$T/mnt"
rc=0
dd if=/dev/urandom of="$T/mnt" bs=64k count=1 seek=1 conv=notrunc,fsync 2>err || rc=$?
[ $rc -ne 0 ] && grep -q "Operation not supported" err || fail "overwrite: rc=$rc $(cat err)"
head -c 131072 /dev/urandom >new.bin
dd if=new.bin of="$T/mnt" bs=64k seek=90 conv=notrunc 2>/dev/null || fail "append of new grains"
cmp <(dd if="$T/mnt" bs=64k skip=90 count=2 2>/dev/null) new.bin || fail "new grains read back"
unmount_img "$T/mnt"
dd if=new.bin of=want.raw bs=64k seek=90 conv=notrunc 2>/dev/null
qemu-img check -q s.vmdk || fail "qemu-img check after append"
qemu-img compare -q -f vmdk -F raw s.vmdk want.raw || fail "after append: qemu reads other data"
