#!/bin/bash
# Hostile vhdx inputs to resize: BAT entries past the table that name
# another block's data must not come to life when the disk grows over them
# (the grown area reads as zeroes, and qemu-img agrees).
. "$(dirname "$0")/../lib.sh"

qemu-img create -q -f vhdx -o block_size=1M "$T/h.vhdx" 8M
qemu-io -f vhdx -c "write -P 0x66 0 1M" "$T/h.vhdx" >/dev/null
python3 - "$T/h.vhdx" <<'PY'
import struct, sys, uuid
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
bat_guid = uuid.UUID('2DC27766-F623-4200-9D64-115E9BFD4A08').bytes_le
rt = 192 * 1024
count = struct.unpack('<I', b[rt + 8:rt + 12])[0]
for i in range(count):
    e = rt + 16 + 32 * i
    if b[e:e + 16] == bat_guid:
        bat = struct.unpack('<Q', b[e + 16:e + 24])[0]
first = b[bat:bat + 8]
assert first[0] & 7 == 6, "block 0 is not present"
for i in range(8, 40):                  # past the 8-entry table
    b[bat + 8 * i:bat + 8 * i + 8] = first
open(p, 'wb').write(b)
PY
mount_img --growable "$T/h.vhdx" "$T/m.raw"
truncate -s 32M "$T/m.raw"
cmp -s -i $((8 << 20)):0 -n $((24 << 20)) "$T/m.raw" /dev/zero ||
    fail "the grown area does not read as zeroes on the mount"
unmount_img "$T/m.raw"
qemu-io -f vhdx -c "read -P 0 8M 24M" -c "read -P 0x66 0 1M" "$T/h.vhdx" \
    >"$T/io" 2>&1
! grep -q fail "$T/io" || fail "grown area or old data per qemu-io: $(cat "$T/io")"
qemu-img check -f vhdx "$T/h.vhdx" >"$T/check" 2>&1 ||
    fail "qemu-img check after the grow: $(cat "$T/check")"
