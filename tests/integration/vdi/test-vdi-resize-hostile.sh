#!/bin/bash
# Hostile vdi inputs to resize: map entries past the disk's end that point
# at another block's data must not come to life when the disk grows over
# them (the grown area reads as zeroes), and the image stays check-clean.
. "$(dirname "$0")/../lib.sh"

qemu-img create -q -f vdi "$T/h.vdi" 16M
qemu-io -f vdi -c "write -P 0x66 0 1M" "$T/h.vdi" >/dev/null
python3 - "$T/h.vdi" <<'PY'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
bmap = struct.unpack('<I', b[0x154:0x158])[0]
b[0x170:0x178] = struct.pack('<Q', 4 << 20)      # 4 MiB disk, 16 blocks
for i in range(4, 16):                            # all aliasing block 0
    b[bmap + 4 * i:bmap + 4 * i + 4] = struct.pack('<I', 0)
open(p, 'wb').write(b)
PY
mount_img --growable "$T/h.vdi" "$T/m.raw"
truncate -s 16M "$T/m.raw"
cmp -s -i $((4 << 20)):0 -n $((12 << 20)) "$T/m.raw" /dev/zero ||
    fail "the grown area does not read as zeroes on the mount"
unmount_img "$T/m.raw"
qemu-io -f vdi -c "read -P 0 4M 12M" -c "read -P 0x66 0 1M" "$T/h.vdi" >"$T/io" 2>&1
! grep -q fail "$T/io" || fail "grown area or old data per qemu-io: $(cat "$T/io")"
qemu-img check -f vdi "$T/h.vdi" >"$T/check" 2>&1 ||
    fail "qemu-img check after the grow: $(cat "$T/check")"
