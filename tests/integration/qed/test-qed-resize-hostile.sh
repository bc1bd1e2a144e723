#!/bin/bash
# Hostile qed inputs to a grow through a --growable mount: L2 entries past
# the end and an L1 entry past the end naming data, and garbage in the last
# cluster's tail past the end, must stay hidden: the grown area reads as
# zeroes on the mount and per qemu-io, the old data stays, check is clean.
. "$(dirname "$0")/../lib.sh"

img=$T/h.qed
qemu-img create -q -f qed -o cluster_size=4K "$img" $((1 << 20 | 1024))
qemu-io -f qed -c "write -P 0x66 0 4k" -c "write -P 0x67 1M 1024" "$img" >/dev/null
python3 - "$img" <<'PY'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
cs = struct.unpack('<I', b[4:8])[0]
l1 = struct.unpack('<Q', b[40:48])[0]
t0 = struct.unpack('<Q', b[l1:l1 + 8])[0]
d0 = struct.unpack('<Q', b[t0:t0 + 8])[0]
last = struct.unpack('<Q', b[t0 + 8 * 256:t0 + 8 * 257])[0]
b[last + 1024:last + cs] = b'\xee' * (cs - 1024)
for i in range(257, 2048):                   # L2 entries past the end
    b[t0 + 8 * i:t0 + 8 * i + 8] = struct.pack('<Q', d0)
b[l1 + 8:l1 + 16] = struct.pack('<Q', t0)   # L1 entry past the end
open(p, 'wb').write(b)
PY
size=$((1 << 20 | 1024))
mount_img --growable -F qed "$img" "$T/m.raw"
truncate -s 20M "$T/m.raw"
cmp -s -i "$size:0" -n $((20 * 1048576 - size)) "$T/m.raw" /dev/zero ||
    fail "hostile: the grown area does not read as zeroes on the mount"
unmount_img "$T/m.raw"
qemu-io -f qed -c "read -P 0 $size $((20 * 1048576 - size))" \
    -c "read -P 0x66 0 4k" -c "read -P 0x67 1M 1024" "$img" >"$T/io" 2>&1
! grep -q fail "$T/io" || fail "hostile: grown area or old data per qemu-io: $(cat "$T/io")"
qemu-img check -f qed "$img" >"$T/check" 2>&1 ||
    fail "hostile: qemu-img check after the grow: $(cat "$T/check")"

echo "ok"
