#!/bin/bash
# vvfat read-only: a random tree of a few hundred files (long names, nested
# and empty directories, empty files) mounted as each disk kind QEMU makes
# (FAT16, FAT32 and FAT12 hard disks, the three floppies) and as a larger
# FAT32 disk with size=. Oracles: fsck.fat -n finds the volume clean, and
# mtools (mcopy -s) copies out exactly the host tree. Also: QEMU's sizes and
# partition types, the label, -F vvfat DIR and json:, symlinks (followed
# only inside DIR), names FAT cannot hold (one warning), a file changed on
# the host (EIO, not stale bytes), and a 400 MiB tree mounted with small RSS.
. "$(dirname "$0")/../lib.sh"
export LC_ALL=C.UTF-8       # mtools turns long names into UTF-8 by the locale
export MTOOLS_SKIP_CHECK=1

python3 "$(dirname "$0")/make-tree.py" "$T/src" 7 300 200000
mkdir "$T/src/an empty directory"
python3 "$(dirname "$0")/make-tree.py" "$T/small" 8 30 20000

# volume IMG DISK: the FAT volume of the mounted DISK as a file fsck.fat
# can read, or DISK itself: the partition at sector 63, its first 64 MiB
# copied out (the metadata and every cluster in use: the trees here are
# smaller) and the rest left as a hole of the partition's size
volume() {
    if [ "$2" = floppy ]; then
        echo "$1"
    else
        rm -f "$T/vol"
        dd if="$1" of="$T/vol" bs=1M count=64 iflag=skip_bytes skip=32256 \
            conv=sparse status=none
        truncate -s $(($(stat -c %s "$1") - 32256)) "$T/vol"
        echo "$T/vol"
    fi
}

# check SOURCE DIR SIZE PTYPE: mount SOURCE, then the size, the partition
# type (none for a floppy), fsck and the tree mtools copies out
check() {
    local src=$1 dir=$2 size=$3 ptype=$4 img=$T/m.raw at=@@32256 kind=disk
    [ "$ptype" = none ] && at= && kind=floppy
    touch "$img"
    mount_img "$src" "$img" 2>/dev/null
    expect_eq "$(stat -c %s "$img")" "$size" "$src: size"
    if [ "$kind" = disk ]; then
        expect_eq "$(od -An -tx1 -j446 -N1 "$img" | tr -d ' ')" 80 "$src: active"
        expect_eq "$(od -An -tx1 -j450 -N1 "$img" | tr -d ' ')" "$ptype" \
            "$src: partition type"
        expect_eq "$(od -An -tu4 -j454 -N4 "$img" | tr -d ' ')" 63 "$src: start"
    fi
    fsck.fat -n "$(volume "$img" $kind)" >"$T/fsck" 2>&1 ||
        fail "$src: fsck.fat -n: $(cat "$T/fsck")"
    rm -rf "$T/out" && mkdir "$T/out"
    mcopy -s -n -m -i "$img$at" '::*' "$T/out/" || fail "$src: mcopy -s failed"
    diff -r "$dir" "$T/out" >"$T/diff" || fail "$src: tree differs: $(head -5 "$T/diff")"
    unmount_img "$img"
    note "$src: $size bytes, fsck clean, mcopy -s gives the host tree"
}

check "fat:$T/src" "$T/src" 528482304 06
check "fat:32:$T/src" "$T/src" 528482304 0b
check "fat:12:$T/src" "$T/src" 33030144 01
check "driver=vvfat,dir=$T/src,fat-type=32,size=1G" "$T/src" 1073741824 0b
check "fat:floppy:$T/small" "$T/small" 2949120 none
check "fat:floppy:12:$T/small" "$T/small" 1474560 none
check "fat:floppy:16:$T/small" "$T/small" 2949120 none
check "json:{\"driver\":\"vvfat\",\"dir\":\"$T/small\",\"floppy\":true}" \
    "$T/small" 2949120 none

# -F vvfat with the directory as SOURCE; a label
touch "$T/m.raw"
mount_img -F vvfat "$T/small" "$T/m.raw" 2>/dev/null
mdir -i "$T/m.raw@@32256" :: | grep -q "Volume in drive : is QEMU VVFAT" ||
    fail "-F vvfat DIR: no default label"
unmount_img "$T/m.raw"
touch "$T/m.raw"
mount_img "driver=vvfat,dir=$T/small,label=my_disk1" "$T/m.raw"
mdir -i "$T/m.raw@@32256" :: | grep -q "Volume in drive : is MY_DISK1" ||
    fail "label not shown by mdir"
unmount_img "$T/m.raw"
note "-F vvfat DIR mounts; label=my_disk1 reads as MY_DISK1"

# names FAT cannot hold, links, and things that are no file
mkdir -p "$T/odd/in"
echo one >"$T/odd/a:b?.txt"
echo upper >"$T/odd/Same.txt"
echo lower >"$T/odd/same.TXT"
echo target >"$T/odd/in/target"
ln -s in/target "$T/odd/inside-link"
ln -s /etc/hostname "$T/odd/outside-link"
ln -s .. "$T/odd/in/loop"
mkfifo "$T/odd/fifo"
touch "$T/m.raw"
mount_img "fat:$T/odd" "$T/m.raw" 2>"$T/warn"
expect_eq "$(grep -c "names FAT cannot hold" "$T/warn")" 1 "one rename warning"
grep -q "a:b?.txt' as 'a_b_.txt'" "$T/warn" || fail "rename not listed: $(cat "$T/warn")"
grep -q "outside-link (a link leading outside" "$T/warn" || fail "outside link not said"
rm -rf "$T/out" && mkdir "$T/out"
mcopy -s -n -m -i "$T/m.raw@@32256" '::*' "$T/out/"
expect_eq "$(cd "$T/out" && find . | sort | tr '\n' ' ')" \
    ". ./Same.txt ./a_b_.txt ./in ./in/target ./inside-link ./same (2).TXT " "odd tree"
expect_eq "$(cat "$T/out/inside-link")" target "inside link"
expect_eq "$(cat "$T/out/same (2).TXT")" lower "case twin"
unmount_img "$T/m.raw"
note "renames, links inside DIR followed, outside/loops/FIFOs left out"

# a file changed on the host while mounted reads as EIO, not stale bytes
mkdir "$T/chg"
head -c 100000 /dev/urandom >"$T/chg/f.bin"
echo keep >"$T/chg/other.txt"
touch "$T/m.raw"
mount_img "fat:$T/chg" "$T/m.raw" 2>/dev/null
touch -d '2001-02-03' "$T/chg/f.bin"
if mcopy -n -i "$T/m.raw@@32256" ::/f.bin "$T/f.out" 2>/dev/null; then
    fail "a file changed on the host read without an error"
fi
mcopy -n -i "$T/m.raw@@32256" ::/other.txt "$T/o.out"
expect_eq "$(cat "$T/o.out")" keep "unchanged file"
unmount_img "$T/m.raw"
note "changed host file: the read fails, others still read"

# 400 MiB of files: read whole, with a small daemon RSS
mkdir "$T/big"
head -c $((40 << 20)) /dev/urandom >"$T/big/random.bin"
for i in 1 2 3 4 5 6 7 8 9; do truncate -s 40M "$T/big/sparse$i.bin"; done
touch "$T/m.raw"
mount_img "fat:$T/big" "$T/m.raw" 2>/dev/null
pid=$(cat "$T"/pid.*)
cat "$T/m.raw" >/dev/null
mcopy -n -i "$T/m.raw@@32256" ::/random.bin "$T/r.out"
cmp -s "$T/r.out" "$T/big/random.bin" || fail "400 MiB tree: random.bin differs"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
unmount_img "$T/m.raw"
[ "$hwm" -lt $((48 * 1024)) ] || fail "400 MiB tree: daemon peak RSS $hwm KiB"
note "400 MiB tree: read whole, daemon peak RSS $hwm KiB"
