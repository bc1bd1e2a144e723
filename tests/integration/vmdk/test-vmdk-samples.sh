#!/bin/bash
# Real vmdk images (tests/data/vmdk, from ../shared/images) read through the
# mount byte-for-byte equal to the MANIFEST hashes, and SEEK_DATA/SEEK_HOLE
# agree with qemu-img map: monolithicSparse, monolithicFlat,
# twoGbMaxExtentSparse/Flat, streamOptimized written by qemu 7.2, the dfvfs
# ext2 image, the ESXi-style stream image with its directory at the end, a
# renamed monolithic image, seSparse bare and through a descriptor, and a
# COWD (vmfsSparse) extent, and a descriptor with extents of mixed kinds.
# All are probed (no -F) and mounted by one daemon in directory mode.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/vmdk-lib.sh"

mkdir "$T/img" "$T/mnt"
cp "$DATA"/vmdk/*.vmdk "$T/img/"
gunzip -c "$DATA/vmdk/gen-vmdk-monolithicFlat-flat.vmdk.gz" >"$T/img/gen-vmdk-monolithicFlat-flat.vmdk"
gunzip -c "$DATA/vmdk/gen-vmdk-twoGbMaxExtentFlat-f001.vmdk.gz" >"$T/img/gen-vmdk-twoGbMaxExtentFlat-f001.vmdk"
# the embedded extent name is stale after a rename: still opens
cp "$T/img/ext2.vmdk" "$T/img/renamed.vmdk"
zcat "$DATA/vmdk/sesparse.vmdk.gz" >"$T/img/ses.vmdk"
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="seSparse"\n\nRW 1048576 SESPARSE "ses.vmdk"\n' >"$T/img/ses-desc.vmdk"

# a COWD (VMFS sparse, VMDK3) extent made here: 4 MiB, 8 KiB grains, five
# grains of random data, named by a vmfsSparse descriptor
python3 - "$T/img/cowd.vmdk" <<'PY'
import os, struct, sys
img = bytearray(512 * 37)
struct.pack_into("<4sIIIIIII", img, 0, b"COWD", 1, 3, 8192, 16, 4, 1, 0)
struct.pack_into("<I", img, 4 * 512, 5)
for g in (0, 3, 100, 511, 200):
    struct.pack_into("<I", img, 5 * 512 + g * 4, len(img) // 512)
    img += os.urandom(16 * 512)
open(sys.argv[1], "wb").write(img)
PY
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="vmfsSparse"\n\nRW 8192 VMFSSPARSE "cowd.vmdk"\n' >"$T/img/cowd-desc.vmdk"

# several extents of mixed kinds in one descriptor: FLAT at an offset,
# SPARSE, ZERO and a read-only FLAT. QEMU 7.2 skips ZERO and RDONLY lines
# and doubles flat extents at an offset, so the expected disk is assembled
# from the pieces here, per the VMware spec.
head -c 1M /dev/urandom >"$T/img/mix-a.raw"
qemu-img create -q -f vmdk "$T/img/mix-s.vmdk" 2M
qemu-io -c "write -P 0x5a 64k 100k" "$T/img/mix-s.vmdk" >/dev/null
printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="custom"\n\nRW 1024 FLAT "mix-a.raw" 1024\nRW 4096 SPARSE "mix-s.vmdk"\nRW 2048 ZERO\nRDONLY 512 FLAT "mix-a.raw" 0\n' >"$T/img/mix.vmdk"
qemu-img convert -f vmdk -O raw "$T/img/mix-s.vmdk" "$T/mix-s.raw"
{ tail -c 512K "$T/img/mix-a.raw"; cat "$T/mix-s.raw"; head -c 1M /dev/zero
  head -c 256K "$T/img/mix-a.raw"; } >"$T/mix.want"
expect_eq "$(stat -c %s "$T/mix.want")" $(( (1024 + 4096 + 2048 + 512) * 512 )) "mixed: expected size"
MIX=$(sha "$T/mix.want")

P8=8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc
P2=711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97
EXT2=a6c2f0e39afe6c6ab432ca5465349fcefe8dc944398e97b2d957d3f89dbb5d80
names=(gen-vmdk-monolithicSparse gen-vmdk-streamOptimized gen-vmdk-twoGbMaxExtentSparse
       gen-vmdk-monolithicFlat gen-vmdk-twoGbMaxExtentFlat ext2 renamed
       iotest-version3-2013 ses ses-desc cowd-desc mix)
want=($P8 $P8 $P8 $P2 $P2 $EXT2 $EXT2 zero1g sesparse sesparse cowd $MIX)
srcs=()
for n in "${names[@]}"; do srcs+=("$T/img/$n.vmdk"); done
mount_img -r "${srcs[@]}" "$T/mnt"

qemu-img convert -U -f vmdk -O raw "$T/img/ses-desc.vmdk" "$T/ses.raw"
qemu-img convert -U -f vmdk -O raw "$T/img/cowd-desc.vmdk" "$T/cowd.raw"
for i in "${!names[@]}"; do
    n=${names[$i]} raw=$T/mnt/${names[$i]}.raw
    case ${want[$i]} in
    zero1g)
        # MANIFEST: the sha256 of 1 GiB of zeroes; cmp is 10x faster
        expect_eq "$(stat -c %s "$raw")" 1073741824 "$n size"
        cmp -s "$raw" /dev/zero -n 1073741824 || fail "$n: not all zeroes" ;;
    sesparse)
        # QEMU 7.2 reports twice the size and repeats the disk: first half
        expect_eq "$(stat -c %s "$raw")" 536870912 "$n size"
        cmp -n 536870912 "$raw" "$T/ses.raw" || fail "$n: differs from qemu-img's reading" ;;
    cowd)
        # QEMU 7.2 doubles this size too: compare the first half
        expect_eq "$(stat -c %s "$raw")" 4194304 "$n size"
        cmp -n 4194304 "$raw" "$T/cowd.raw" || fail "$n: differs from qemu-img's reading" ;;
    *)
        expect_eq "$(sha "$raw")" "${want[$i]}" "$n content" ;;
    esac
    # qemu-img map doubles seSparse too
    [ ${want[$i]} = sesparse ] || [ ${want[$i]} = cowd ] || [ $n = mix ] || holes_vs_qemu "$raw" "$T/img/$n.vmdk"
    note "$n ok"
done
unmount_img "$T/mnt"

# info names the subformat and the extents
"$IMGFUSE" info "$T/img/gen-vmdk-twoGbMaxExtentSparse.vmdk" >"$T/info"
grep -q "create type: twoGbMaxExtentSparse" "$T/info" || fail "info: $(cat "$T/info")"
grep -q "extent 1: SPARSE 8388608 bytes 'gen-vmdk-twoGbMaxExtentSparse-s001.vmdk'" "$T/info" ||
    fail "info extents: $(cat "$T/info")"
# seSparse is read-only
rc=0
"$IMGFUSE" -F vmdk "$T/img/ses.vmdk" "$T/mnt-rw" 2>"$T/err" || rc=$?
[ $rc -ne 0 ] && grep -q "read-only here; mount with -r" "$T/err" || fail "seSparse rw: $(cat "$T/err")"
