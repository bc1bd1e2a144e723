#!/bin/bash
# nbdkit on TCP loopback (multi-conn memory disk): writes through the mount
# checked with nbdcopy, parallel readers, discard turning into holes, the
# legacy nbd:HOST:PORT string, `imgfuse info` naming server and export, and
# a server with block size constraints (unaligned writes, st_blksize).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nbd-lib.sh"

port=$(free_port)
start_nbdkit mem -i 127.0.0.1 -p "$port" memory 32M
uri="nbd://127.0.0.1:$port/"

note "imgfuse info shows the protocol node"
"$IMGFUSE" info -F raw "$uri" > "$T/info" 2>&1 || fail "info failed: $(cat "$T/info")"
grep -q "127.0.0.1:$port" "$T/info" || fail "info does not name the server: $(cat "$T/info")"
grep -qi "block size" "$T/info" || fail "info shows no block size: $(cat "$T/info")"

note "writes through the mount land on the server"
mount_img -F raw "$uri" "$T/m"
expect_eq "$(stat -c %s "$T/m")" 33554432 "size of the mounted export"
head -c 4M /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/m" bs=1M seek=3 conv=notrunc,fsync status=none
dd if="$T/pat" of="$T/m" bs=512 seek=1 count=3 conv=notrunc,fsync status=none
nbdcopy "$uri" "$T/export.raw"
cmp "$T/m" "$T/export.raw" || fail "mount and export differ"
cmp <(dd if="$T/export.raw" bs=1M skip=3 count=4 status=none) "$T/pat" ||
    fail "export lacks the 4 MiB written at 3 MiB"

note "four parallel readers see the same bytes"
for i in 0 1 2 3; do
    dd if="$T/m" of="$T/par.$i" bs=256k skip=$((i * 32)) count=32 status=none &
done
wait
cat "$T/par.0" "$T/par.1" "$T/par.2" "$T/par.3" | cmp - "$T/export.raw" ||
    fail "parallel reads differ from the export"

note "discard becomes a hole on the server"
fallocate -p -o 4M -l 1M "$T/m"
sync "$T/m"
cmp <(head -c 1M /dev/zero) <(dd if="$T/m" bs=1M skip=4 count=1 status=none) ||
    fail "punched range does not read as zeroes through the mount"
qemu-io -f raw -c 'read -P 0 4M 1M' "$uri" >/dev/null ||
    fail "punched range does not read as zeroes on the server"
qemu-img map --output=json -f raw "$uri" > "$T/map.json"
python3 - "$T/map.json" <<'PY' || fail "qemu-img map shows no hole at 4M after the discard"
import json, sys
m = json.load(open(sys.argv[1]))
ok = any(e["start"] <= 4 << 20 and e["start"] + e["length"] >= 5 << 20 and not e["data"]
         for e in m)
sys.exit(0 if ok else 1)
PY
seek_map "$T/m" > "$T/ours.map"
qemu_data_map -f raw "$uri" > "$T/qemu.map"
diff -u "$T/qemu.map" "$T/ours.map" || fail "SEEK_DATA/SEEK_HOLE differ from qemu-img map"
unmount_img "$T/m"

note "legacy nbd:127.0.0.1:PORT"
nbdcopy "$uri" "$T/export2.raw"
mount_img -r -F raw "nbd:127.0.0.1:$port" "$T/m2"
cmp "$T/m2" "$T/export2.raw" || fail "legacy nbd:HOST:PORT mount differs"
unmount_img "$T/m2"

note "block size constraints: 4 KiB minimum, 64 KiB preferred, 1 MiB maximum"
port2=$(free_port)
start_nbdkit bs -i 127.0.0.1 -p "$port2" --filter=blocksize-policy memory 8M \
    blocksize-minimum=4096 blocksize-preferred=65536 blocksize-maximum=1M \
    blocksize-error-policy=error
uri2="nbd://127.0.0.1:$port2/"
"$IMGFUSE" info -F raw "$uri2" > "$T/info2" 2>&1 || fail "info failed: $(cat "$T/info2")"
grep -q "minimum 4096, preferred 65536, maximum 1048576" "$T/info2" ||
    fail "info does not show the server's block sizes: $(cat "$T/info2")"
mount_img -F raw "$uri2" "$T/m3"
expect_eq "$(stat -c %o "$T/m3")" 65536 "st_blksize from the preferred block size"
head -c 1000 /dev/urandom > "$T/p1k"
dd if="$T/p1k" of="$T/m3" bs=1 seek=5000 conv=notrunc,fsync status=none
head -c 3M /dev/urandom > "$T/p3m"
dd if="$T/p3m" of="$T/m3" bs=3M seek=1048577 oflag=seek_bytes conv=notrunc,fsync status=none
nbdcopy "$uri2" "$T/bs.raw"
cmp <(dd if="$T/bs.raw" bs=1 skip=5000 count=1000 status=none) "$T/p1k" ||
    fail "unaligned write lost on a 4 KiB-block server"
cmp <(dd if="$T/bs.raw" bs=1M skip=1048577 count=3145728 iflag=skip_bytes,count_bytes status=none) "$T/p3m" ||
    fail "3 MiB write at offset 1 MiB + 1 lost on a server with a 1 MiB maximum"
cmp "$T/m3" "$T/bs.raw" || fail "mount and export differ"
unmount_img "$T/m3"
echo OK
