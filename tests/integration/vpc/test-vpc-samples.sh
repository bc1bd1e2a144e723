#!/bin/bash
# Real VHD images (qemu, Hyper-V, Disk2VHD, dfvfs, dissect) read byte for
# byte as the corpus MANIFEST says; SEEK_DATA agrees with the allocation;
# a differencing disk reads through its parent; checksum damage is refused
# unless ignore_checksum=on.
. "$(dirname "$0")/../lib.sh"

# check_sha IMG EXPECTED ORACLE [imgfuse options...]: content equals the
# MANIFEST hash, and qemu's when ORACLE is "qemu"
check_sha() {
    local img=$1 want=$2 oracle=$3 mnt=$T/mnt.$RANDOM got
    shift 3
    mount_img -r "$@" "$img" "$mnt"
    got=$(sha "$mnt")
    expect_eq "$got" "$want" "$(basename "$img") content"
    if [ "$oracle" = qemu ]; then
        expect_eq "$got" "$(qemu_raw_sha "$img" vpc)" "$(basename "$img") vs qemu"
    fi
    unmount_img "$mnt"
    note "$(basename "$img"): ok"
}

for f in gen-vpc-dynamic gen-vpc-fixed ext2 image image-differential \
         hyperv2012r2-dynamic dissect-dynamic; do
    zcat "$DATA/vpc/$f.vhd.gz" >"$T/$f.vhd"
done
bunzip2 -c "$DATA/vpc/d2v-zerofilled.vhd.bz2" >"$T/d2v.vhd"

check_sha "$T/gen-vpc-dynamic.vhd" \
    26f676523b6622e344db853d0c80228de7b9536372a1d14b2f434eb702cde74f qemu
# fixed disks have no header to probe: -F vpc
check_sha "$T/gen-vpc-fixed.vhd" \
    711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97 qemu -F vpc
check_sha "$T/ext2.vhd" \
    870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99 qemu
check_sha "$T/dissect-dynamic.vhd" \
    ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784 qemu
check_sha "$T/d2v.vhd" \
    1ba076be94a8a64541c25aae8d5a5f8b0da758c3797af597e03acb431ff8d143 manifest

# Hyper-V's 127 GiB disk with nothing allocated: size from current_size,
# and SEEK_DATA finds no data (hashing 127 GiB would take minutes)
mnt=$T/mnt-hyperv
mount_img -r "$T/hyperv2012r2-dynamic.vhd" "$mnt"
expect_eq "$(stat -c %s "$mnt")" 136365211648 "hyper-v virtual size"
python3 - "$mnt" <<'PY' || fail "hyper-v disk: SEEK_DATA found data"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.lseek(fd, 0, os.SEEK_DATA)
    sys.exit(1)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENXIO else 1)
PY
head -c 4M "$mnt" | cmp -s - <(head -c 4M /dev/zero) || fail "hyper-v disk not zero"
unmount_img "$mnt"

# holes: SEEK_DATA/SEEK_HOLE follow the block allocation (qemu-img map)
mnt=$T/mnt-map
mount_img -r "$T/ext2.vhd" "$mnt"
ours=$(python3 - "$mnt" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size, off, out = os.fstat(fd).st_size, 0, []
while off < size:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    out.append("%d-%d" % (d, h))
    off = h
print(" ".join(out))
PY
)
theirs=$(qemu-img map -f vpc --output=json "$T/ext2.vhd" | python3 -c '
import json, sys
runs = []
for e in json.load(sys.stdin):
    if e["data"]:
        s, t = e["start"], e["start"] + e["length"]
        if runs and runs[-1][1] == s:
            runs[-1][1] = t
        else:
            runs.append([s, t])
print(" ".join("%d-%d" % (a, b) for a, b in runs))')
expect_eq "$ours" "$theirs" "ext2.vhd data runs"
unmount_img "$mnt"

# dfvfs image.vhd: the footer checksum is wrong (QEMU refuses it too)
rc=0
mount_img -r "$T/image.vhd" "$T/mnt-bad" 2>"$T/err" || rc=$?
[ $rc -ne 0 ] || fail "image.vhd with a bad checksum mounted"
grep -q "checksum mismatch.*ignore_checksum=on" "$T/err" ||
    fail "image.vhd: message '$(cat "$T/err")'"
note "image.vhd: $(head -1 "$T/err")"
check_sha "$T/image.vhd" \
    c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25 \
    libvhdi -o ignore_checksum=on
# dfvfs image-differential.vhd: parent found by the name in its header (it
# has no locators), both damaged the same way; the option covers the chain
check_sha "$T/image-differential.vhd" \
    c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25 \
    libvhdi -o ignore_checksum=on
"$IMGFUSE" info -o ignore_checksum=on "$T/image-differential.vhd" 2>/dev/null |
    grep -q "parent: image.vhd" || fail "differencing disk: parent not named in info"
