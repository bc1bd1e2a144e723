#!/bin/bash
# Real vhdx images (tests/data/vhdx, from ../shared/images) read through a
# read-only mount byte-for-byte equal to the MANIFEST hashes: Windows 8 and
# 10 dynamic images, qemu-made dynamic and fixed ones, and the Hyper-V image
# with a dirty log, which is replayed in memory without touching the file.
. "$(dirname "$0")/../lib.sh"

# openssl uses SHA-NI where sha256sum does not: 10 GiB in seconds
mount_sha() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }

# check_sample PACKED EXPECTED_SHA EXPECTED_SIZE
check_sample() {
    local packed=$1 want=$2 size=$3 img mnt
    img=$T/$(basename "${packed%.*}")
    case $packed in
        *.bz2) bunzip2 -c "$DATA/vhdx/$packed" >"$img" ;;
        *.gz) gzip -dc "$DATA/vhdx/$packed" >"$img" ;;
    esac
    local before
    before=$(sha "$img")
    mnt=$T/$(basename "$img").raw
    mount_img -r "$img" "$mnt"
    expect_eq "$(stat -c %s "$mnt")" "$size" "$packed: virtual size"
    expect_eq "$(mount_sha "$mnt")" "$want" "$packed: content"
    unmount_img "$mnt"
    expect_eq "$(sha "$img")" "$before" "$packed: the read-only mount changed the file"
    note "$packed: ok"
}

check_sample gen-vhdx-dynamic.vhdx.gz \
    711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97 2097152
check_sample gen-vhdx-fixed.vhdx.gz \
    711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97 2097152
check_sample dissect-dynamic-10M.vhdx.gz \
    8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac 10485760
check_sample iotest-dynamic-1G.vhdx.bz2 \
    d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478 1073741824

# the dirty log: QEMU refuses this image read-only; we replay it in memory
img=$T/iotest-dirtylog-10G-4M.vhdx
check_sample iotest-dirtylog-10G-4M.vhdx.bz2 \
    179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f 10737418240
if qemu-img info "$img" >/dev/null 2>&1; then fail "qemu opened the dirty image read-only"; fi
"$IMGFUSE" info "$img" | grep -q "log replayed: 1 entries (in memory" ||
    fail "info does not report the in-memory replay"
# a read-write mount replays it into the file, as qemu's read-write open does
cp "$img" "$T/by-qemu.vhdx"
qemu-io -c quit "$T/by-qemu.vhdx" >/dev/null
mount_img "$img" "$T/dirty-rw.raw"
unmount_img "$T/dirty-rw.raw"
qemu-img check -q "$img" || fail "qemu-img check after our on-disk replay"
qemu-img compare -q "$T/by-qemu.vhdx" "$img" || fail "our replay differs from qemu's"
echo ok
