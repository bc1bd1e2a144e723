#!/bin/bash
# Real vmdk images (tests/data/vmdk, from ../shared/images) read through the
# mount byte-for-byte equal to the MANIFEST hashes, and SEEK_DATA/SEEK_HOLE
# agree with qemu-img map: monolithicSparse, monolithicFlat,
# twoGbMaxExtentSparse/Flat, streamOptimized written by qemu 7.2, the dfvfs
# ext2 image and the ESXi-style stream image with its directory at the end.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/vmdk-lib.sh"

cp "$DATA"/vmdk/*.vmdk "$T/"
gunzip -c "$DATA/vmdk/gen-vmdk-monolithicFlat-flat.vmdk.gz" >"$T/gen-vmdk-monolithicFlat-flat.vmdk"
gunzip -c "$DATA/vmdk/gen-vmdk-twoGbMaxExtentFlat-f001.vmdk.gz" >"$T/gen-vmdk-twoGbMaxExtentFlat-f001.vmdk"

P8=8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc
P2=711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97
ZERO_1G=49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14
check() {
    local img=$1 want=$2 mnt=$T/mnt-$1
    mount_img -r "$T/$img" "$mnt"       # probed, not -F: probing must find vmdk
    if [ "$want" = $ZERO_1G ]; then
        # the MANIFEST hash is that of 1 GiB of zeroes: cmp is 10x faster
        expect_eq "$(stat -c %s "$mnt")" 1073741824 "$img size"
        cmp -s "$mnt" /dev/zero -n 1073741824 || fail "$img: not all zeroes"
    else
        expect_eq "$(sha "$mnt")" "$want" "$img content"
    fi
    holes_vs_qemu "$mnt" "$T/$img"
    unmount_img "$mnt"
    note "$img ok"
}
check gen-vmdk-monolithicSparse.vmdk $P8
check gen-vmdk-streamOptimized.vmdk $P8
check gen-vmdk-twoGbMaxExtentSparse.vmdk $P8
check gen-vmdk-monolithicFlat.vmdk $P2
check gen-vmdk-twoGbMaxExtentFlat.vmdk $P2
check ext2.vmdk a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80
check iotest-version3-2013.vmdk $ZERO_1G

# a renamed monolithic image still opens: the embedded extent name is stale
mv "$T/ext2.vmdk" "$T/renamed.vmdk"
mnt=$T/mnt-renamed
mount_img -r "$T/renamed.vmdk" "$mnt"
expect_eq "$(sha "$mnt")" a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80 \
    "renamed monolithicSparse"
unmount_img "$mnt"

# info names the subformat and the extents
"$IMGFUSE" info "$T/gen-vmdk-twoGbMaxExtentSparse.vmdk" >"$T/info"
grep -q "create type: twoGbMaxExtentSparse" "$T/info" || fail "info: $(cat "$T/info")"
grep -q "extent 1: SPARSE 8388608 bytes 'gen-vmdk-twoGbMaxExtentSparse-s001.vmdk'" "$T/info" ||
    fail "info extents: $(cat "$T/info")"
