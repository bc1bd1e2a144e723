#!/bin/bash
# Real qcow2 images (QEMU-made and public corpora) read byte-for-byte equal
# to the MANIFEST hashes (= qemu-img convert -O raw), internal snapshots
# mount read-only, and a missing external data file is a clear error.
. "$(dirname "$0")/../lib.sh"

for f in "$DATA"/qcow2/*.qcow2.gz; do
    gunzip -c "$f" >"$T/$(basename "$f" .gz)"
done

fsha() {
    if command -v openssl >/dev/null; then
        openssl dgst -sha256 -r "$1" | cut -d' ' -f1
    else
        sha "$1"
    fi
}

check() {
    local img=$1 want=$2 mnt=$T/m.raw
    shift 2
    mount_img -r "$@" "$T/$img" "$mnt"
    expect_eq "$(fsha "$mnt")" "$want" "$img $*"
    unmount_img "$mnt"
    note "$img $* ok"
}

p8=8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc
for i in v3 v2-compat010 compressed-zlib compressed-zstd v2-compressed-zlib \
         extended-l2 c4k-refcount1; do
    check gen-qcow2-$i.qcow2 $p8
done
check gen-chain-base.qcow2 $p8
check gen-chain-mid.qcow2 387c51a8a20c18c91990e155735edc8a71786d3b30f391a16fc9e7b8464c4d07
check gen-chain-top.qcow2 f36c67ddbcc94765e590cd1c41edb32dece672dcc2a4068d20f1a3cb8cbf16fa
check gen-qcow2-snapshots.qcow2 0fd3063feb1213c82f27cd144f7a1a410cd63d9e27e1b9e9945ccd4ed3be61e4
check gen-qcow2-snapshots.qcow2 $p8 -o snapshot=snap1
check gen-qcow2-snapshots.qcow2 $p8 -o snapshot=1
check gen-qcow2-snapshots.qcow2 88fe8e61a415615607ab4f77bf0c87bee7a584bd204b538322b363f476d1d50e -o snapshot=snap2
check ext2.qcow2 a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80
check image.qcow2 a9c0220b1dadd1812fc4bbe137f495d2c3b88c7b33b5a4de545d201fd31b3bc0
check basic.qcow2 3c86a52ad19ebbe34acffb812d276817ddca56522eb72de2b984d70ffb20582f
check backing-chain-1.qcow2 186334af67c1acb54b08ded0b6a419571000755d4c810c8b768a30281e2ab074

# the oracle agrees on a chain opened through our copies
expect_eq "$(qemu_raw_sha "$T/gen-chain-top.qcow2")" \
    f36c67ddbcc94765e590cd1c41edb32dece672dcc2a4068d20f1a3cb8cbf16fa "oracle"

# info lists the snapshots
"$IMGFUSE" info "$T/gen-qcow2-snapshots.qcow2" >"$T/info"
grep -q "name=snap1" "$T/info" || fail "info lacks snap1: $(cat "$T/info")"
grep -q "name=snap2" "$T/info" || fail "info lacks snap2"

# a snapshot that does not exist, a data file that is missing
rc=0
mount_img -r -o snapshot=nosuch "$T/gen-qcow2-snapshots.qcow2" "$T/e1.raw" \
    2>"$T/err" || rc=$?
[ $rc -ne 0 ] && grep -q "no snapshot" "$T/err" || fail "snapshot: $(cat "$T/err")"
rc=0
mount_img -r "$T/data-file.qcow2" "$T/e2.raw" 2>"$T/err" || rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "data-file.bin" "$T/err" ||
    fail "data file: rc $rc: $(cat "$T/err")"
note "errors: ok"
