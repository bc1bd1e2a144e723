#!/bin/bash
# Real cloop V2 images (tests/data/cloop, from ../shared/images) read
# through the mount byte for byte equal to their MANIFEST hashes and to
# qemu-img convert -f cloop; probed without -F; info names the layout.
. "$(dirname "$0")/../lib.sh"

check() {
    local img=$1 want=$2 mnt=$T/mnt-$1
    gzip -dc "$DATA/cloop/$img.gz" >"$T/$img"
    touch "$mnt"
    mount_img -r "$T/$img" "$mnt"
    expect_eq "$(sha "$mnt")" "$want" "$img content"
    unmount_img "$mnt"
    expect_eq "$(qemu_raw_sha "$T/$img" cloop)" "$want" "qemu-img on $img"
    note "$img ok"
}

check simple-pattern.cloop \
    7c77af2771e0f86b7ec9707374c7416037fedae45cb0e6e27fbdf55688a5dd12
check gen-cloop-64k.cloop \
    8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc

"$IMGFUSE" info "$T/simple-pattern.cloop" >"$T/info"
grep -q "file format: cloop" "$T/info" || fail "info: $(cat "$T/info")"
grep -q "block size: 65536" "$T/info" || fail "info: $(cat "$T/info")"
grep -q "blocks: 16" "$T/info" || fail "info: $(cat "$T/info")"
