#!/bin/bash
# Real dmg samples (tests/data/dmg, from ../shared/images) read through the
# mount byte-for-byte equal to the MANIFEST hashes: zlib, bzip2, ADC, LZFSE,
# raw and zero/ignore chunks; SEEK_HOLE finds the ignore chunks.
. "$(dirname "$0")/../lib.sh"

DISK=1407509ff44696aab011815d84951ad2c53cb7345a71d9803b73817c2d2d83cf
check() {
    local img=$1 want=$2 mnt=$T/mnt-$1
    mount_img -F dmg -r "$DATA/dmg/$img" "$mnt"
    expect_eq "$(sha "$mnt")" "$want" "$img content"
    note "$img ok"
    unmount_img "$mnt"
}

for img in input_zlib.dmg input_bzip2.dmg input_adc.dmg input_lzfse.dmg \
           input_ro.dmg; do
    check "$img" "$DISK"
done
check hfsplus_zlib-2021.dmg \
    aaa0aeaa062801b1a3abcc3a0695d2739cb6861cbd8d5eaf6ae8f0589d53e0a5
check simple-dmg.dmg \
    20647e0a98a830a6a250b91e0e6d7200a872caea07b87a3c19611f3dd031c9df

# the oracle agrees where QEMU has the codec
expect_eq "$(qemu_raw_sha "$DATA/dmg/simple-dmg.dmg" dmg)" \
    20647e0a98a830a6a250b91e0e6d7200a872caea07b87a3c19611f3dd031c9df \
    "qemu-img on simple-dmg.dmg"

# holes: input_ro.dmg has data in sectors 0-33 and 40-855, an ignore chunk
# from 856 to 20487, and data again in 20495-20527
mnt=$T/mnt-holes
mount_img -F dmg -r "$DATA/dmg/input_ro.dmg" "$mnt"
got=$(python3 - "$mnt" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.lseek(fd, 856 * 512 - 4096, os.SEEK_HOLE),
      os.lseek(fd, 856 * 512, os.SEEK_DATA))
PY
)
expect_eq "$got" "$((856 * 512)) $((20495 * 512))" "SEEK_HOLE/SEEK_DATA"
unmount_img "$mnt"
