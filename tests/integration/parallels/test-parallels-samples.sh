#!/bin/bash
# Real Parallels images (qemu's iotest samples, v1 and v2, and the corpus's
# generated one), images qemu-img writes from data with holes (two cluster
# sizes) and an empty one it creates, and a v1 image derived from one of them read byte for byte as
# the MANIFEST and qemu say; SEEK_DATA / SEEK_HOLE follow the catalog as
# qemu-img map reports it.
. "$(dirname "$0")/../lib.sh"

# check NAME WANT: the mounted image hashes to WANT and to qemu's hash, and
# its data runs are qemu-img map's
check() {
    local img=$T/img/$1.hds raw=$T/m/$1.raw want=$2 got
    got=$(sha "$raw")
    [ "$want" = qemu ] || expect_eq "$got" "$want" "$1 content"
    expect_eq "$got" "$(qemu_raw_sha "$img" parallels)" "$1 vs qemu"
    expect_eq "$(seek_map "$raw")" "$(qemu_data_map -f parallels "$img")" \
        "$1 data runs"
    note "$1: ok"
}

# to_v1 SRC DST: the same image as "WithoutFreeSpace", catalog in sectors
to_v1() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
assert b[:16] == b'WithouFreSpacExt'
b[:16] = b'WithoutFreeSpace'
tracks, n = struct.unpack_from('<II', b, 28)
for i in range(n):
    e, = struct.unpack_from('<I', b, 64 + 4 * i)
    struct.pack_into('<I', b, 64 + 4 * i, e * tracks)
open(sys.argv[2], 'wb').write(b)
PY
}

mkdir -p "$T/img" "$T/m"
for f in fake.parallels parallels-v2 gen-parallels.parallels; do
    zcat "$DATA/parallels/$f.gz" >"$T/img/${f%.parallels}.hds"
done
# what qemu writes, from data with holes: 3 MiB of data, a 4 MiB hole,
# then data ending in a partial cluster
head -c 3M /dev/urandom >"$T/pattern.raw"
truncate -s 7M "$T/pattern.raw"
head -c 1500000 /dev/urandom >>"$T/pattern.raw"
qemu-img convert -f raw -O parallels "$T/pattern.raw" "$T/img/q-1m.hds"
qemu-img convert -f raw -O parallels -o cluster_size=64k "$T/pattern.raw" \
    "$T/img/q-64k.hds"
to_v1 "$T/img/q-64k.hds" "$T/img/q-v1.hds"
qemu-img create -q -f parallels "$T/img/q-empty.hds" 5M
[ "$(head -c 16 "$T/img/q-1m.hds")" = WithouFreSpacExt ] ||
    fail "qemu-img no longer writes v2 images"

mount_img -r "$T"/img/*.hds "$T/m"
check fake 15faf41ebc93b5f734341cb7a2d909001e3f7306960f9d8bc63894f2a8e5bc45
check parallels-v2 15faf41ebc93b5f734341cb7a2d909001e3f7306960f9d8bc63894f2a8e5bc45
check gen-parallels 8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc
check q-1m qemu
check q-64k qemu
check q-v1 "$(sha "$T/m/q-64k.raw")"
check q-empty "$(head -c 5M /dev/zero | sha256sum | cut -d' ' -f1)"
# the size rounds up to a sector; the data is the pattern's
cmp -s -n "$(stat -c %s "$T/pattern.raw")" "$T/m/q-1m.raw" "$T/pattern.raw" ||
    fail "converted data differs from the pattern"
unmount_img "$T/m"

# info names the subformat and the catalog
"$IMGFUSE" info "$T/img/fake.hds" >"$T/info"
grep -q "subformat: WithoutFreeSpace (v1)" "$T/info" || fail "info: $(cat "$T/info")"
grep -q "cluster size: 65536" "$T/info" || fail "info: $(cat "$T/info")"
echo "test-parallels-samples: ok"
