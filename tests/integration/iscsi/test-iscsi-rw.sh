#!/bin/bash
# A file-backed, thin-provisioned LUN on tgtd: bytes written through the
# mount land in the backing file and the reverse; SEEK_DATA/SEEK_HOLE come
# from GET LBA STATUS; a punched hole is a WRITE SAME with UNMAP (the
# backing file loses its blocks); parallel writers on several sessions;
# info names portal, target and block size; a LUN with 4 KiB blocks.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/iscsi-lib.sh"

lun=$T/lun.img
truncate -s 32M "$lun"
tgt_start a
tgt_lun a "$lun" thin
url=$(iscsi_url a)

note "info shows the protocol node"
"$IMGFUSE" info "$url" > "$T/info" || fail "info failed: $(cat "$T/info")"
grep -q "^virtual size: 32 MiB (33554432 bytes)" "$T/info" || fail "size: $(cat "$T/info")"
grep -q "^portal: 127.0.0.1:$TGT_PORT" "$T/info" || fail "portal: $(cat "$T/info")"
grep -q "^target: $IQN" "$T/info" || fail "target: $(cat "$T/info")"
grep -q "^block size: 512" "$T/info" || fail "block size: $(cat "$T/info")"
grep -q "unmap" "$T/info" || fail "thin lun features: $(cat "$T/info")"

mount_img -F raw "$url" "$T/m"
expect_eq "$(stat -c %s "$T/m")" 33554432 "mounted size"

note "a fresh thin lun is one hole"
python3 - "$T/m" <<'PY' || fail "seek on an empty lun"
import os, sys, errno
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.lseek(fd, 0, os.SEEK_DATA)
    sys.exit("found data in an empty lun")
except OSError as e:
    if e.errno != errno.ENXIO:
        raise
assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
PY

note "writes through the mount reach the backing file"
head -c 1M /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/m" bs=64k seek=48 conv=notrunc,fsync status=none
cmp <(dd if="$lun" bs=64k skip=48 count=16 status=none) "$T/pat" ||
    fail "backing file differs after a write through the mount"
# an unaligned write: core does read-modify-write on 512-byte blocks
printf 'hello, iscsi' | dd of="$T/m" bs=1 seek=1000003 conv=notrunc,fsync status=none
expect_eq "$(dd if="$lun" bs=1 skip=1000003 count=12 status=none)" "hello, iscsi" \
    "unaligned write"

note "SEEK_DATA/SEEK_HOLE follow the written range"
python3 - "$T/m" <<'PY' || fail "seek after writes"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
d = os.lseek(fd, 0, os.SEEK_DATA)
assert d <= 1000003 and d >= 1000003 - 65536, d
h = os.lseek(fd, 3 << 20, os.SEEK_HOLE)
assert h >= 4 << 20 and h <= (4 << 20) + 65536, h
assert os.lseek(fd, 3 << 20, os.SEEK_DATA) == 3 << 20
PY

note "writes to the backing file are read through the mount"
head -c 64k /dev/urandom > "$T/pat2"
dd if="$T/pat2" of="$lun" bs=64k seek=200 conv=notrunc,fsync status=none
cmp <(dd if="$T/m" bs=64k skip=200 count=1 iflag=direct status=none) "$T/pat2" ||
    fail "the mount does not show what was written to the backing file"

note "punching a hole unmaps the blocks on the target"
before=$(du -k "$lun" | cut -f1)
fallocate -p -o 3M -l 1M "$T/m" || fail "punch hole failed"
after=$(du -k "$lun" | cut -f1)
[ "$after" -lt "$before" ] || fail "backing file kept its blocks ($before -> $after KiB)"
cmp -n 1048576 -i 3145728:0 "$lun" /dev/zero || fail "punched range is not zero"
cmp -n 1048576 -i 3145728:0 "$T/m" /dev/zero || fail "punched range reads non-zero"

note "four writers at once on four sessions, verified"
unmount_img "$T/m"
mount_img -F raw "$url?connections=4" "$T/m"
fio --name=par --filename="$T/m" --rw=randwrite --bs=4k --size=2M --numjobs=4 \
    --offset=8M --offset_increment=2M --direct=1 --verify=crc32c --verify_fatal=1 \
    --group_reporting > "$T/fio.log" 2>&1 || fail "parallel verify: $(tail -5 "$T/fio.log")"
grep -q "err= 0" "$T/fio.log" || fail "parallel verify: $(tail -5 "$T/fio.log")"

note "the mount and the lun agree byte for byte"
unmount_img "$T/m"
mount_img -r -F raw "$url" "$T/m"
cmp "$T/m" "$lun" || fail "mount and backing file differ"

note "a lun with 4 KiB blocks: alignment from READ CAPACITY, unaligned writes"
truncate -s 4M "$T/lun4k.img"
tgt a --op new --mode logicalunit --tid 1 --lun 2 -b "$T/lun4k.img" --blocksize=4096
url4k="iscsi://127.0.0.1:$TGT_PORT/$IQN/2"
"$IMGFUSE" info "$url4k" > "$T/info4k" 2>&1 || fail "info: $(cat "$T/info4k")"
grep -q "^block size: 4096" "$T/info4k" || fail "4k block size: $(cat "$T/info4k")"
mount_img -F raw "$url4k" "$T/m4k"
printf 'across two blocks' | dd of="$T/m4k" bs=1 seek=4090 conv=notrunc,fsync status=none
expect_eq "$(dd if="$T/lun4k.img" bs=1 skip=4090 count=17 status=none)" \
    "across two blocks" "unaligned write on a 4k lun"
cmp -n 4090 "$T/lun4k.img" /dev/zero || fail "4k lun: bytes before the write changed"
unmount_img "$T/m4k"
echo ok
