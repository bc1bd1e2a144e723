#!/bin/bash
# Hostile vpc inputs to resize: BAT entries past the disk's end that point
# at garbage (or at another block's data) must not come to life when the
# disk grows over them; the grown area reads as zeroes.
. "$(dirname "$0")/../lib.sh"

qemu-img create -q -f vpc "$T/h.vhd" 4M
qemu-io -f vpc -c "write -P 0x66 0 2M" "$T/h.vhd" >/dev/null
python3 - "$T/h.vhd" <<'PY'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
def csum(buf, off):
    return struct.pack('>I', ~(sum(buf[:off]) + sum(buf[off + 4:])) & 0xffffffff)
dyn = 512
table = struct.unpack('>Q', b[dyn + 16:dyn + 24])[0]
n = struct.unpack('>I', b[dyn + 28:dyn + 32])[0]
blk0 = b[table:table + 4]
# 8 entries: the ones past the disk name block 0's data, or far beyond
b[dyn + 28:dyn + 32] = struct.pack('>I', 8)
for i in range(n, 8):
    b[table + 4 * i:table + 4 * i + 4] = blk0 if i % 2 else b'\x7f\xff\xff\xf0'
hdr = b[dyn:dyn + 1024]
b[dyn + 36:dyn + 40] = csum(hdr, 36)
open(p, 'wb').write(b)
PY
size=$("$IMGFUSE" info --json "$T/h.vhd" |
       sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
mount_img --growable "$T/h.vhd" "$T/m.raw"
truncate -s 16M "$T/m.raw"
cmp -s -i "$size:0" -n $((16 * 1048576 - size)) "$T/m.raw" /dev/zero ||
    fail "the grown area does not read as zeroes on the mount"
unmount_img "$T/m.raw"
qemu-io -f vpc -c "read -P 0 $size $((16 * 1048576 - size))" \
    -c "read -P 0x66 0 2M" "$T/h.vhd" >"$T/io" 2>&1
! grep -q fail "$T/io" || fail "grown area or old data per qemu-io: $(cat "$T/io")"
"$IMGFUSE" check -F vpc "$T/h.vhd" >"$T/check" 2>&1 ||
    fail "imgfuse check after the grow: $(cat "$T/check")"
