#!/bin/bash
# Real vhdx images (tests/data/vhdx, from ../shared/images) read through a
# read-only mount byte-for-byte equal to the MANIFEST hashes: Windows 8 and
# 10 dynamic images, qemu-made dynamic and fixed ones, and the Hyper-V image
# with a dirty log, which is replayed in memory without touching the file;
# a read-write mount replays that log into the file the way qemu does.
. "$(dirname "$0")/../lib.sh"

# openssl uses SHA-NI where sha256sum does not: 10 GiB in seconds
mount_sha() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }

names=() wants=() sizes=()
sample() {     # PACKED SHA SIZE
    local img=$T/$(basename "${1%.*}")
    case $1 in
        *.bz2) bunzip2 -c "$DATA/vhdx/$1" >"$img" ;;
        *.gz) gzip -dc "$DATA/vhdx/$1" >"$img" ;;
    esac
    names+=("$img") wants+=("$2") sizes+=("$3")
}
sample gen-vhdx-dynamic.vhdx.gz \
    711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97 2097152
sample gen-vhdx-fixed.vhdx.gz \
    711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97 2097152
sample dissect-dynamic-10M.vhdx.gz \
    8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac 10485760
sample iotest-dynamic-1G.vhdx.bz2 \
    d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478 1073741824
sample iotest-dirtylog-10G-4M.vhdx.bz2 \
    179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f 10737418240
dirty=$T/iotest-dirtylog-10G-4M.vhdx
before=()
for img in "${names[@]}"; do before+=("$(sha "$img")"); done

# QEMU refuses the dirty image read-only; we replay its log in memory
if qemu-img info "$dirty" >/dev/null 2>&1; then fail "qemu opened the dirty image read-only"; fi
"$IMGFUSE" info "$dirty" | grep -q "log replayed: 1 entries (in memory" ||
    fail "info does not report the in-memory replay"

# one directory mount for all of them: mounts are cheap, unmounts are not
mkdir "$T/mnt"
mount_img -r "${names[@]}" "$T/mnt"
for i in "${!names[@]}"; do
    raw=$T/mnt/$(basename "${names[$i]}" .vhdx).raw
    expect_eq "$(stat -c %s "$raw")" "${sizes[$i]}" "$(basename "$raw"): virtual size"
    expect_eq "$(mount_sha "$raw")" "${wants[$i]}" "$(basename "$raw"): content"
    note "$(basename "${names[$i]}"): ok"
done
unmount_img "$T/mnt"
for i in "${!names[@]}"; do
    expect_eq "$(sha "${names[$i]}")" "${before[$i]}" \
        "$(basename "${names[$i]}"): the read-only mount changed the file"
done

# a read-write mount replays the log into the file, as qemu's read-write open does
cp "$dirty" "$T/by-qemu.vhdx"
qemu-io -c quit "$T/by-qemu.vhdx" >/dev/null
mount_img "$dirty" "$T/dirty-rw.raw"
unmount_img "$T/dirty-rw.raw"
qemu-img check -q "$dirty" || fail "qemu-img check after our on-disk replay"
qemu-img compare -q "$T/by-qemu.vhdx" "$dirty" || fail "our replay differs from qemu's"
echo ok
