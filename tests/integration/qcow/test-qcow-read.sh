#!/bin/bash
# qcow (version 1) images read byte for byte as the corpus MANIFEST and qemu
# say: the corpus image, what qemu-img makes (plain, compressed with -c, over
# a backing file, which is 512-byte clusters) and hand-made cluster and L2
# table geometries (scripts/mkimage-qcow.py); SEEK_DATA / SEEK_HOLE follow
# qemu-img map.
. "$(dirname "$0")/common.sh"

# check NAME [WANT]: the mounted image hashes to qemu's hash (and WANT), and
# its data runs are qemu-img map's
check() {
    local img=$T/img/$1.qcow raw=$T/m/$1.raw got
    got=$(sha "$raw")
    [ -z "${2:-}" ] || expect_eq "$got" "$2" "$1 content"
    expect_eq "$got" "$(qemu_raw_sha "$img" qcow)" "$1 vs qemu"
    expect_eq "$(seek_map "$raw")" "$(qemu_data_map -f qcow "$img")" "$1 data runs"
    note "$1: ok"
}

mkdir -p "$T/img" "$T/m"
for f in gen-qcow1 small-mixed; do
    zcat "$DATA/qcow/$f.qcow.gz" >"$T/img/$f.qcow"
done
# a pattern with holes, random runs and compressible runs
python3 - "$T/pattern.raw" <<'PY'
import random, sys
r = random.Random(11)
b = bytearray(3 * 1024 * 1024 + 3 * 512)
for i in range(200):
    o = r.randrange(len(b) - 20000)
    n = r.randrange(1, 20000)
    b[o:o + n] = bytes([r.randrange(1, 4)]) * n if i % 2 else r.randbytes(n)
open(sys.argv[1], 'wb').write(b)
PY
qemu-img convert -f raw -O qcow "$T/pattern.raw" "$T/img/q-plain.qcow"
qemu_compress "$T/pattern.raw" "$T/img/q-comp.qcow"
# over a backing file: half the pattern in the base, the rest in the top
head -c 2M /dev/urandom >"$T/img/base.raw"
truncate -s "$(stat -c %s "$T/pattern.raw")" "$T/img/base.raw"
qemu-img create -q -f qcow -b base.raw -F raw "$T/img/q-top.qcow"
qemu-io -f qcow -c "write -P 0x5c 1M 1536k" -c "write -P 0 2560k 4k" \
    -c "write -P 0x17 3071k 2k" "$T/img/q-top.qcow" >/dev/null
(cd "$T/img" && qemu_compress -B base.raw -F raw "$T/pattern.raw" q-comp-over.qcow)
for g in "9 6" "11 13" "14 7" "16 6"; do
    set -- $g
    python3 "$ROOT/scripts/mkimage-qcow.py" "$T/pattern.raw" \
        "$T/img/h-$1-$2.qcow" "$1" "$2" "$1$2"
done

mount_img -r "$T"/img/*.qcow "$T/m"
check gen-qcow1 8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc
check small-mixed 08ae2ad55b491476378b0ad06c6ee2732fa64d3ac494e6a868418a8a47bbf28b
check q-plain "$(sha "$T/pattern.raw")"
check q-comp "$(sha "$T/pattern.raw")"
check q-top
check q-comp-over "$(sha "$T/pattern.raw")"
for g in 9-6 11-13 14-7 16-6; do
    check "h-$g" "$(sha "$T/pattern.raw")"
done
unmount_img "$T/m"
