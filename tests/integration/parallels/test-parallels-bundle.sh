#!/bin/bash
# Parallels bundles: a DiskDescriptor.xml (docs/interop/prl-xml.rst) naming
# four extents qemu-img wrote (expandable with 1 MiB and 64 KiB clusters,
# and a plain one) mounts as one disk equal to the concatenation of the
# pieces, given as the descriptor or as the .hdd directory, holes where qemu left clusters unallocated; one extent opened
# alone reads as qemu reads it; a top snapshot reads over its root. A
# missing extent is named; names leading outside the bundle (../,
# absolute), snapshot loops, entity declarations and overlapping storages
# are refused. Also run with
# IMGFUSE=build-asan/imgfuse.
. "$(dirname "$0")/../lib.sh"

B=$T/disk.hdd
mkdir -p "$B" "$T/m"
# 8 MiB: random, a zero MiB at 1 MiB, random to 6 MiB, zeroes to the end
head -c 6M /dev/urandom >"$T/pattern.raw"
truncate -s 8M "$T/pattern.raw"
dd if=/dev/zero of="$T/pattern.raw" bs=1M seek=1 count=1 conv=notrunc status=none
for i in 0 1 2 3; do
    dd if="$T/pattern.raw" of="$T/p$i.raw" bs=2M skip=$i count=1 status=none
done
qemu-img convert -f raw -O parallels "$T/p0.raw" "$B/disk.hdd.0.hds"
cp "$T/p1.raw" "$B/disk.hdd.1.hds"
qemu-img convert -f raw -O parallels -o cluster_size=64k "$T/p2.raw" "$B/disk.hdd.2.hds"
qemu-img convert -f raw -O parallels "$T/p3.raw" "$B/disk.hdd.3.hds"

# descriptor OUT DISK_SECTORS [EXTRA] then lines "START END TYPE FILE"
descriptor() {
    local out=$1 size=$2 extra=${3:-} start end type file
    {
        echo "<?xml version='1.0' encoding='UTF-8'?>"
        echo "$extra"
        echo '<Parallels_disk_image Version="1.0">'
        echo "  <Disk_Parameters><Disk_size>$size</Disk_size>"
        echo "    <Cylinders>16</Cylinders><Heads>16</Heads><Sectors>64</Sectors>"
        echo "    <Padding>0</Padding></Disk_Parameters>"
        echo "  <StorageData>"
        while read -r start end type file; do
            echo "    <Storage><Start>$start</Start><End>$end</End>"
            echo "      <Blocksize>2048</Blocksize>"
            for f in $file; do
                echo "      <Image><GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>"
                echo "        <Type>$type</Type><File>$f</File></Image>"
            done
            echo "    </Storage>"
        done
        echo "  </StorageData>"
        echo "  <Snapshots><Shot><GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>"
        echo "    <ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID>"
        echo "  </Shot></Snapshots>"
        echo "</Parallels_disk_image>"
    } >"$out"
}

descriptor "$B/DiskDescriptor.xml" 16384 <<'EOF2'
0 4096 Compressed disk.hdd.0.hds
4096 8192 Plain disk.hdd.1.hds
8192 12288 Compressed disk.hdd.2.hds
12288 16384 Compressed disk.hdd.3.hds
EOF2

mount_img -r "$B/DiskDescriptor.xml" "$T/m"
cmp "$T/m/DiskDescriptor.raw" "$T/pattern.raw" ||
    fail "the bundle differs from the concatenation of its pieces"
expect_eq "$(seek_map "$T/m/DiskDescriptor.raw" | tr '\n' ' ')" \
    "0 1048576 2097152 6291456 " "bundle data runs"
unmount_img "$T/m"
"$IMGFUSE" info "$B/DiskDescriptor.xml" >"$T/info"
grep -q "extents: 4" "$T/info" || fail "info: $(cat "$T/info")"
note "a bundle of four extents reads as their concatenation"

# the .hdd directory itself is the bundle (its DiskDescriptor.xml)
mount_img -r "$B" "$T/b.raw"
cmp "$T/b.raw" "$T/pattern.raw" || fail "the bundle directory differs"
unmount_img "$T/b.raw"
"$IMGFUSE" info "$B/" | grep -q "extents: 4" || fail "info of the bundle directory"
mkdir "$T/empty.hdd"
expect_error "$T/empty.hdd" "is a directory"
note "the .hdd directory opens as its DiskDescriptor.xml; one without it is refused"

# one extent alone: its own disk, as qemu reads it
mount_img -r "$B/disk.hdd.2.hds" "$T/m"
expect_eq "$(sha "$T/m/disk.hdd.2.raw")" \
    "$(qemu_raw_sha "$B/disk.hdd.2.hds" parallels)" "one extent alone vs qemu"
unmount_img "$T/m"

# refuse NAME WHAT: mounting descriptor NAME fails saying WHAT
refuse() {
    expect_fail_within 10 "$IMGFUSE" -r "$B/$1" "$T/out.raw"
    expect_err "$2"
    grep -q "AddressSanitizer\|runtime error" "$T/err" && fail "$1: $(cat "$T/err")"
    note "$1: refused ($2)"
}
descriptor "$B/missing.xml" 16384 <<'EOF2'
0 4096 Compressed disk.hdd.0.hds
4096 8192 Compressed disk.hdd.9.hds
EOF2
refuse missing.xml "file 'disk.hdd.9.hds'"
expect_err "No such file or directory"

cp "$B/disk.hdd.0.hds" "$T/outside.hds"
descriptor "$B/dotdot.xml" 4096 <<'EOF2'
0 4096 Compressed ../outside.hds
EOF2
refuse dotdot.xml "file '../outside.hds' lies outside"
descriptor "$B/absolute.xml" 4096 <<<"0 4096 Compressed $T/outside.hds"
refuse absolute.xml "file '$T/outside.hds' lies outside"
# allowed when the user says so
mount_img -r --related=follow "$B/dotdot.xml" "$T/m"
cmp -s "$T/m/dotdot.raw" "$T/p0.raw" || fail "--related=follow: ../ extent"
unmount_img "$T/m"

# snapshots: a top image over a root, found through <Shot>/<ParentGUID>;
# the top has only [1 MiB, 1.5 MiB) allocated (qemu-img leaves zero
# clusters out), the rest reads through to the root
head -c 1M /dev/zero >"$T/top.raw"
head -c 512K /dev/zero | tr '\0' '\167' >>"$T/top.raw"
truncate -s 2M "$T/top.raw"
qemu-img convert -f raw -O parallels -o cluster_size=64k "$T/top.raw" "$B/top.hds"
cp "$T/p0.raw" "$T/want.raw"
dd if="$T/top.raw" of="$T/want.raw" bs=512K skip=2 seek=2 count=1 conv=notrunc status=none
# snapshots OUT TOP_PARENT: root {1...}, top {5fba...} whose parent is given
snapshots() {
    cat >"$1" <<EOF2
<?xml version='1.0' encoding='UTF-8'?>
<Parallels_disk_image Version="1.0">
  <Disk_Parameters><Disk_size>4096</Disk_size><Padding>0</Padding></Disk_Parameters>
  <StorageData><Storage><Start>0</Start><End>4096</End><Blocksize>2048</Blocksize>
    <Image><GUID>{11111111-2222-3333-4444-555555555555}</GUID>
      <Type>Compressed</Type><File>disk.hdd.0.hds</File></Image>
    <Image><GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>
      <Type>Compressed</Type><File>top.hds</File></Image>
  </Storage></StorageData>
  <Snapshots>
    <Shot><GUID>{11111111-2222-3333-4444-555555555555}</GUID>
      <ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID></Shot>
    <Shot><GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>
      <ParentGUID>$2</ParentGUID></Shot>
  </Snapshots>
</Parallels_disk_image>
EOF2
}
snapshots "$B/snapshots.xml" "{11111111-2222-3333-4444-555555555555}"
mount_img -r "$B/snapshots.xml" "$T/m"
cmp "$T/m/snapshots.raw" "$T/want.raw" || fail "a snapshot over its root"
unmount_img "$T/m"
note "a top snapshot reads over its root"
snapshots "$B/loop.xml" "{5fbaabe3-6958-40ff-92a7-860e329aab41}"
refuse loop.xml "is in a loop of snapshots"
descriptor "$B/overlap.xml" 8192 <<'EOF2'
0 4096 Compressed disk.hdd.0.hds
2048 8192 Compressed disk.hdd.2.hds
EOF2
refuse overlap.xml "overlaps the one before it"
descriptor "$B/entity.xml" 4096 \
    '<!DOCTYPE Parallels_disk_image [<!ENTITY x "disk.hdd.0.hds">]>' <<'EOF2'
0 4096 Compressed &x;
EOF2
refuse entity.xml "declares entities"
descriptor "$B/beyond.xml" 4096 <<'EOF2'
0 8192 Compressed disk.hdd.0.hds
EOF2
refuse beyond.xml "lies beyond the disk"
echo "test-parallels-bundle: ok"
