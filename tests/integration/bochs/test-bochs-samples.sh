#!/bin/bash
# Bochs growing images read byte for byte as the corpus MANIFEST and qemu
# say: QEMU's empty.bochs, the corpus's bximage conversion, and images
# bximage makes here (create: empty, several sizes; convert: data with
# holes, several extent sizes). SEEK_DATA / SEEK_HOLE follow the extents'
# sector bitmaps (qemu-img map reports bochs as all data, so the map comes
# from tests/integration/bochs/bochs.py reading the bitmaps).
. "$(dirname "$0")/../lib.sh"
PY=$(dirname "$0")/bochs.py

command -v bximage >/dev/null || fail "bximage is not installed (scripts/install-deps.sh)"

# check NAME WANT: the mounted image hashes to WANT (or to qemu's hash
# only, for WANT=qemu), and its data runs are the bitmaps'
check() {
    local img=$T/img/$1.bochs raw=$T/m/$1.raw want=$2 got
    got=$(sha "$raw")
    [ "$want" = qemu ] || expect_eq "$got" "$want" "$1 content"
    expect_eq "$got" "$(qemu_raw_sha "$img" bochs)" "$1 vs qemu"
    expect_eq "$(stat -c %s "$raw")" \
        "$(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
        "$1 size"
    expect_eq "$(seek_map "$raw")" "$(python3 "$PY" map "$img")" "$1 data runs"
    note "$1: ok"
}

bx() { bximage -q "$@" >/dev/null 2>"$T/bx.err" || fail "bximage $*: $(cat "$T/bx.err")"; }

mkdir -p "$T/img" "$T/m"
for f in empty gen-bochs-growing; do
    zcat "$DATA/bochs/$f.bochs.gz" >"$T/img/$f.bochs"
done
# empty images bximage creates (its extent size grows with the disk;
# bximage takes -imgmode only after -hd)
bx -func=create -hd=10M -imgmode=growing "$T/img/create-10m.bochs"
bx -func=create -hd=64M -imgmode=growing "$T/img/create-64m.bochs"
# data with holes: random runs, not extent-aligned, and a sparse tail
head -c 3M /dev/urandom >"$T/a.raw"
truncate -s 7M "$T/a.raw"
head -c 1500000 /dev/urandom >>"$T/a.raw"
truncate -s 9000K "$T/a.raw"
bx -func=convert -imgmode=growing "$T/a.raw" "$T/img/convert-9m.bochs"
truncate -s 40M "$T/b.raw"
for off in 1000 5000000 21000000 41942000; do
    printf 'bochs data at %d' $off | dd of="$T/b.raw" bs=1 seek=$off conv=notrunc status=none
done
bx -func=convert -imgmode=growing "$T/b.raw" "$T/img/convert-40m.bochs"

mount_img -r "$T"/img/*.bochs "$T/m"
check empty 85e614bc2ef17bec493b849dbeea34687ba52d7b1fedc4e5fc3729b0fb059aad
check gen-bochs-growing 711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97
check create-10m qemu
check create-64m qemu
check convert-9m "$(sha "$T/a.raw")"
check convert-40m "$(sha "$T/b.raw")"
[ -z "$(seek_map "$T/m/create-64m.raw")" ] || fail "an empty image has data runs"
[ -n "$(seek_map "$T/m/convert-40m.raw")" ] || fail "convert-40m has no data runs"
# a read in the middle of an extent, not starting on a sector
expect_eq "$(dd if="$T/m/convert-40m.raw" bs=1 skip=5000000 count=21 status=none)" \
    "bochs data at 5000000" "unaligned read"
unmount_img "$T/m"

# info names the subformat and the header's fields
"$IMGFUSE" info "$T/img/convert-9m.bochs" >"$T/info" || fail "info failed"
for want in "file format: bochs" "subformat: growing" "header version: 2" \
            "extent size: " "extents allocated: "; do
    grep -q "^$want" "$T/info" || fail "info lacks '$want': $(cat "$T/info")"
done
note "info: ok"
