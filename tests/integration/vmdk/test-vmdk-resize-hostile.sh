#!/bin/bash
# Hostile vmdk inputs to resize: grain-directory entries past the disk's
# end (in the directory's last sector) and grain-table entries past it (in
# the last table) that name the first grain's data, and bytes of the last,
# partly used grain past the end, must not come to life when the disk grows
# over them: the grown area reads as zeroes on the mount and per qemu-io.
. "$(dirname "$0")/../lib.sh"

img=$T/h.vmdk
qemu-img create -q -f vmdk "$img" $((8 << 20 | 1024))
qemu-io -f vmdk -c "write -P 0x66 0 64k" -c "write -P 0x67 8M 1024" "$img" >/dev/null
python3 - "$img" <<'PY'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
rgd, gd = struct.unpack('<QQ', b[48:64])
grain = struct.unpack('<Q', b[20:28])[0] * 512
for d in (gd, rgd):
    t0 = struct.unpack('<I', b[d * 512:d * 512 + 4])[0]
    g0 = struct.unpack('<I', b[t0 * 512:t0 * 512 + 4])[0]
    g128 = struct.unpack('<I', b[t0 * 512 + 512:t0 * 512 + 516])[0]
    # stale directory entries 1..9 name table 0
    for i in range(1, 10):
        b[d * 512 + 4 * i:d * 512 + 4 * i + 4] = struct.pack('<I', t0)
    # stale table entries past grain 128 name grain 0's data
    for i in range(129, 512):
        b[t0 * 512 + 4 * i:t0 * 512 + 4 * i + 4] = struct.pack('<I', g0)
# the last grain (128, 1024 bytes used) holds garbage past the end
off = g128 * 512
b[off + 1024:off + grain] = b'\xee' * (grain - 1024)
open(p, 'wb').write(b)
PY
size=$((8 << 20 | 1024))
mount_img --growable -F vmdk "$img" "$T/m.raw"
truncate -s 100M "$T/m.raw"
cmp -s -i "$size:0" -n $((100 * 1048576 - size)) "$T/m.raw" /dev/zero ||
    fail "the grown area does not read as zeroes on the mount"
unmount_img "$T/m.raw"
qemu-io -f vmdk -c "read -P 0 $size $((100 * 1048576 - size))" \
    -c "read -P 0x66 0 64k" -c "read -P 0x67 8M 1024" "$img" >"$T/io" 2>&1
! grep -q fail "$T/io" || fail "grown area or old data per qemu-io: $(cat "$T/io")"
qemu-img check -f vmdk "$img" >"$T/check" 2>&1 ||
    fail "qemu-img check after the grow: $(cat "$T/check")"
"$IMGFUSE" check -F vmdk "$img" >"$T/check" 2>&1 ||
    fail "imgfuse check after the grow: $(cat "$T/check")"
echo "ok"
