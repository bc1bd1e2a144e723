#!/bin/bash
# Real VHD images (qemu, Hyper-V, Disk2VHD, dfvfs, dissect) and images qemu
# converts into each subformat read byte for byte as the corpus MANIFEST and
# qemu say; SEEK_DATA/SEEK_HOLE agree with qemu-img map; a differencing
# disk reads through its parent; with ignore_checksum=on a chain with
# checksum damage reads. One directory mount holds most images (fast).
. "$(dirname "$0")/../lib.sh"

mkdir -p "$T/img" "$T/m" "$T/img2" "$T/m2"
for f in gen-vpc-dynamic gen-vpc-fixed ext2 hyperv2012r2-dynamic dissect-dynamic; do
    zcat "$DATA/vpc/$f.vhd.gz" >"$T/img/$f.vhd"
done
bunzip2 -c "$DATA/vpc/d2v-zerofilled.vhd.bz2" >"$T/img/d2v.vhd"
for f in image image-differential; do
    zcat "$DATA/vpc/$f.vhd.gz" >"$T/img2/$f.vhd"
done
# what qemu writes for each subformat and option, from data with holes
head -c 3M /dev/urandom >"$T/pattern.raw"
truncate -s 7M "$T/pattern.raw"
head -c 1500000 /dev/urandom >>"$T/pattern.raw"
for o in subformat=dynamic subformat=fixed subformat=dynamic,force_size=on \
         subformat=fixed,force_size=on; do
    qemu-img convert -f raw -O vpc -o "$o" "$T/pattern.raw" \
        "$T/img/q-$(echo "$o" | tr ',=' '--').vhd"
done

# fixed disks have no header to probe: -F vpc for all
mount_img -r -F vpc "$T"/img/*.vhd "$T/m"

# expect IMG WANT: the mounted IMG hashes to WANT ("qemu": qemu's hash)
expect() {
    local name=$1 want=$2
    [ "$want" = qemu ] && want=$(qemu_raw_sha "$T/img/$name.vhd" vpc)
    expect_eq "$(sha "$T/m/$name.raw")" "$want" "$name content"
    note "$name: ok"
}

expect gen-vpc-dynamic 26f676523b6622e344db853d0c80228de7b9536372a1d14b2f434eb702cde74f
expect gen-vpc-fixed 711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97
expect ext2 870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99
expect dissect-dynamic ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784
expect d2v 1ba076be94a8a64541c25aae8d5a5f8b0da758c3797af597e03acb431ff8d143
for f in gen-vpc-dynamic ext2 dissect-dynamic "$T"/img/q-*.vhd; do
    expect "$(basename "$f" .vhd)" qemu
done

# Hyper-V's 127 GiB disk with nothing allocated: size from current_size,
# and SEEK_DATA finds no data (hashing 127 GiB would take minutes)
hv=$T/m/hyperv2012r2-dynamic.raw
expect_eq "$(stat -c %s "$hv")" 136365211648 "hyper-v virtual size"
python3 - "$hv" <<'PY' || fail "hyper-v disk: SEEK_DATA found data"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.lseek(fd, 0, os.SEEK_DATA)
    sys.exit(1)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENXIO else 1)
PY
cmp -s <(head -c 4M "$hv") <(head -c 4M /dev/zero) || fail "hyper-v disk not zero"

# holes: SEEK_DATA/SEEK_HOLE follow the block allocation (qemu-img map)
for f in ext2 q-subformat-dynamic dissect-dynamic; do
    expect_eq "$(seek_map "$T/m/$f.raw")" "$(qemu_data_map -f vpc "$T/img/$f.vhd")" "$f data runs"
done
unmount_img "$T/m"

# dfvfs image.vhd: the footer checksum is wrong (QEMU refuses it; read-only
# it opens with a warning, see test-vpc-footer-checksum.sh)
# with the option it reads as libvhdi reads it; image-differential.vhd finds
# its parent by the name in its header (it has no locators), damaged the
# same way: the option covers the chain
mount_img -r -o ignore_checksum=on "$T"/img2/*.vhd "$T/m2"
for f in image image-differential; do
    expect_eq "$(sha "$T/m2/$f.raw")" \
        c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25 "$f content"
done
unmount_img "$T/m2"
"$IMGFUSE" info -o ignore_checksum=on "$T/img2/image-differential.vhd" 2>/dev/null |
    grep -q "parent: image.vhd" || fail "differencing disk: parent not named in info"
note "dfvfs pair: ok"
