#!/bin/bash
# qemu-nbd on a unix socket: read and write through imgfuse both ways, the
# three spellings of the source (URI, legacy string, dotted options), and
# SEEK_DATA/SEEK_HOLE against qemu-img map of the export.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nbd-lib.sh"

img=$T/disk.raw
truncate -s 16M "$img"
qemu-io -f raw -c 'write -P 0x11 0 64k' -c 'write -P 0x22 4M 1M' \
    -c 'write -P 0x33 15M 4k' "$img" >/dev/null
sock=$NBD_S/q.sock
# --shared: our pool may use several connections and the oracle needs one.
start_qemu_nbd q -e 8 -k "$sock" -f raw -x disk "$img"
uri="nbd+unix:///disk?socket=$sock"
want=$(sha "$img")

note "read through the mount equals the export"
mount_img -F raw "$uri" "$T/m1"
expect_eq "$(stat -c %s "$T/m1")" 16777216 "size of the mounted export"
expect_eq "$(sha "$T/m1")" "$want" "sha256 of the mount"

note "SEEK_DATA/SEEK_HOLE match qemu-img map of the export"
seek_map "$T/m1" > "$T/ours.map"
qemu_data_map -f raw "$uri" > "$T/qemu.map"
diff -u "$T/qemu.map" "$T/ours.map" || fail "data map differs from qemu-img map"
[ "$(wc -l < "$T/ours.map")" -ge 3 ] || fail "expected at least 3 data ranges"

note "writes through the mount reach the export"
head -c 300000 /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/m1" bs=4k seek=1000 conv=notrunc,fsync status=none
dd if="$T/pat" of="$T/m1" bs=1 seek=7777 count=1000 conv=notrunc,fsync status=none
cmp <(dd if="$T/m1" bs=4k skip=1000 count=74 status=none | head -c 300000) "$T/pat" ||
    fail "read back through the mount differs"
nbdcopy "$uri" "$T/export.raw"
cmp "$T/m1" "$T/export.raw" || fail "export differs from the mount after writes"
cmp <(dd if="$T/export.raw" bs=4k skip=1000 count=74 status=none | head -c 300000) "$T/pat" ||
    fail "the export does not have the data written through the mount"
# The driver caches the last block status reply: writes must invalidate it.
seek_map "$T/m1" > "$T/ours2.map"
qemu_data_map -f raw "$uri" > "$T/qemu2.map"
diff -u "$T/qemu2.map" "$T/ours2.map" || fail "data map after writes differs from qemu-img map"
! cmp -s "$T/ours.map" "$T/ours2.map" || fail "the data map did not change after writing into a hole"
python3 - "$T/m1" <<'PY' || fail "SEEK_DATA right after a write into a hole is stale"
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
before = os.lseek(fd, 2 << 20, os.SEEK_DATA)      # fills the driver's cache
os.pwrite(fd, b"x" * 4096, (2 << 20) + 65536)
os.fsync(fd)
after = os.lseek(fd, 2 << 20, os.SEEK_DATA)
sys.exit(0 if before > (2 << 20) + 65536 and after == (2 << 20) + 65536 else 1)
PY
nbdcopy "$uri" "$T/export.raw"
unmount_img "$T/m1"

note "legacy nbd:unix: string and dotted options open the same export"
mount_img -r "nbd:unix:$sock:exportname=disk" "$T/m2"
cmp "$T/m2" "$T/export.raw" || fail "legacy nbd:unix: mount differs"
unmount_img "$T/m2"
mount_img -r "driver=nbd,server.type=unix,server.path=$sock,export=disk" "$T/m3"
cmp "$T/m3" "$T/export.raw" || fail "dotted-options mount differs"
unmount_img "$T/m3"

note "writes made on the server are seen by a new mount"
qemu-io -f raw -c 'write -P 0x5a 8M 128k' "$uri" >/dev/null
mount_img -r -F raw "$uri" "$T/m4"
expect_eq "$(dd if="$T/m4" bs=64k skip=128 count=2 status=none | tr -d '\132' | wc -c)" 0 \
    "bytes at 8M after qemu-io wrote 0x5a there"
unmount_img "$T/m4"
echo OK
