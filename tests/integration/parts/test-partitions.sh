#!/bin/bash
# Partitions as files: an MBR disk (with logical partitions) and a GPT disk
# made by sfdisk/sgdisk, filesystems made by mkfs and read by fsck, debugfs
# and mtools through NAME-pN.raw (directory mode) and --partition=N (file
# mode); writes, hole punching and SEEK_HOLE on a partition file land in
# the disk; a table changed through the disk file shows at the next mount.
. "$(dirname "$0")/../lib.sh"

S=512
mkdir -p "$T/tree" "$T/m" "$T/m2"
echo "hello from ext4" > "$T/tree/hello.txt"
echo "note on fat" > "$T/note.txt"

# ---- MBR: p1 ext4, p2 extended holding p5 FAT and p6 ext4; as qcow2 ----
raw=$T/mbr.raw
truncate -s 64M "$raw"
printf 'label: dos\n,16M,L\n,,E\n,12M,c\n,,L\n' | sfdisk -q "$raw"
# start|size IMAGE N: partition N's first sector or length, as sfdisk says
start() { sfdisk -d "$1" | awk -v n="$2" '$1 ~ n"$" { gsub(",", ""); print $4 }'; }
size() { sfdisk -d "$1" | awk -v n="$2" '$1 ~ n"$" { gsub(",", ""); print $6 }'; }
p1=$(start "$raw" 1); p5=$(start "$raw" 5); p6=$(start "$raw" 6)
mkfs.ext4 -q -F -L root -d "$T/tree" -E offset=$((p1 * S)) "$raw" $(( $(size "$raw" 1) / 2 ))k
mkfs.fat -n EFI --offset="$p5" "$raw" $(( $(size "$raw" 5) / 2 )) >/dev/null
mcopy -i "$raw@@$((p5 * S))" "$T/note.txt" ::/NOTE.TXT
mkfs.ext4 -q -F -L data -E offset=$((p6 * S)) "$raw" $(( $(size "$raw" 6) / 2 ))k
qemu-img convert -O qcow2 "$raw" "$T/mbr.qcow2"

mount_img "$T/mbr.qcow2" "$T/m"
expect_eq "$(ls "$T/m" | tr '\n' ' ')" "mbr-p1.raw mbr-p5.raw mbr-p6.raw mbr.raw " "directory listing"
for n in 1 5 6; do
    expect_eq "$(stat -c %s "$T/m/mbr-p$n.raw")" "$(( $(size "$raw" $n) * S ))" "size of p$n"
done
fsck.ext4 -n "$T/m/mbr-p1.raw" >/dev/null 2>&1 || fail "fsck of p1"
fsck.ext4 -n "$T/m/mbr-p6.raw" >/dev/null 2>&1 || fail "fsck of p6"
fsck.fat -n "$T/m/mbr-p5.raw" >/dev/null || fail "fsck of p5"
expect_eq "$(debugfs -R 'cat /hello.txt' "$T/m/mbr-p1.raw" 2>/dev/null)" "hello from ext4" "debugfs on p1"
expect_eq "$(mtype -i "$T/m/mbr-p5.raw" ::/NOTE.TXT)" "note on fat" "mtype on p5"

# writes through partition files: a FAT file, an ext4 file, raw bytes
echo "written through the mount" > "$T/new.txt"
mcopy -i "$T/m/mbr-p5.raw" "$T/new.txt" ::/NEW.TXT
debugfs -w -R "write $T/new.txt new.txt" "$T/m/mbr-p6.raw" >/dev/null 2>&1
head -c 65536 /dev/urandom > "$T/rand"
tail_off=$(( $(size "$raw" 1) * S - 131072 ))      # p1's last 128 KiB: unused
cat "$T/m/mbr.raw" > /dev/null                      # disk pages now cached
dd if="$T/rand" of="$T/m/mbr-p1.raw" bs=64k seek=$((tail_off / 65536)) conv=notrunc status=none
cmp <(dd if="$T/m/mbr.raw" bs=64k skip=$(( (p1 * S + tail_off) / 65536 )) count=1 status=none) "$T/rand" ||
    fail "a write to p1 is not seen (or seen stale) through the disk file"
# a hole punched in a partition reads as zeroes and is a hole
fallocate -p -o "$tail_off" -l 65536 "$T/m/mbr-p1.raw"
cmp <(dd if="$T/m/mbr-p1.raw" bs=64k skip=$((tail_off / 65536)) count=1 status=none) \
    <(head -c 65536 /dev/zero) || fail "punched range of p1 is not zero"
hole=$(python3 -c "import os,sys; f=os.open(sys.argv[1],os.O_RDONLY); print(os.lseek(f,$tail_off,os.SEEK_HOLE))" "$T/m/mbr-p1.raw")
[ "$hole" -le "$tail_off" ] || fail "SEEK_HOLE in p1 from $tail_off: $hole"
data=$(python3 -c "
import os, sys
f = os.open(sys.argv[1], os.O_RDONLY)
first = os.lseek(f, 0, os.SEEK_DATA)
try: print(first, os.lseek(f, $tail_off, os.SEEK_DATA))
except OSError as e: print(first, 'ENXIO' if e.errno == 6 else e)" "$T/m/mbr-p1.raw")
expect_eq "$data" "0 ENXIO" "SEEK_DATA in p1 (superblock area; nothing after the punched tail)"
unmount_img "$T/m"

# the disk as qemu reads it holds all that was written
qemu-img convert -O raw "$T/mbr.qcow2" "$T/back.raw"
expect_eq "$(mtype -i "$T/back.raw@@$((p5 * S))" ::/NEW.TXT)" "written through the mount" "FAT write in the disk"
dd if="$T/back.raw" of="$T/p6.raw" bs=512 skip="$p6" count="$(size "$raw" 6)" status=none
fsck.ext4 -n "$T/p6.raw" >/dev/null 2>&1 || fail "fsck of p6 after writes"
expect_eq "$(debugfs -R 'cat /new.txt' "$T/p6.raw" 2>/dev/null)" "written through the mount" "ext4 write in the disk"

# info lists the table with filesystems and labels, as sfdisk and mkfs made it
"$IMGFUSE" info --json "$T/mbr.qcow2" > "$T/info.json"
sfdisk --json "$raw" > "$T/sfdisk.json"
python3 - "$T/info.json" "$T/sfdisk.json" <<'PY' || fail "info's partition table: $(cat "$T/info.json")"
import json, sys
ours = json.load(open(sys.argv[1]))["partition-table"]
sf = json.load(open(sys.argv[2]))["partitiontable"]
assert ours["type"] == sf["label"], ours
import re
want = {int(re.search(r"(\d+)$", p["node"]).group(1)): p for p in sf["partitions"]}
got = {p["number"]: p for p in ours["partitions"]}
assert sorted(got) == sorted(want), (got.keys(), want.keys())
for n, p in want.items():
    assert got[n]["start"] == p["start"] * 512 and got[n]["length"] == p["size"] * 512, (n, got[n], p)
assert got[2]["extended"] and got[5]["logical"], got
assert (got[1]["filesystem"], got[1]["label"]) == ("ext4", "root"), got[1]
assert (got[5]["filesystem"], got[5]["label"]) == ("vfat", "EFI"), got[5]
assert (got[6]["filesystem"], got[6]["label"]) == ("ext4", "data"), got[6]
PY
"$IMGFUSE" info "$T/mbr.qcow2" | grep -q "partition 5: .*logical, filesystem vfat, label 'EFI'" ||
    fail "info text: $("$IMGFUSE" info "$T/mbr.qcow2")"

# file mode: one partition is the mounted file; -o partition= too
mount_img --partition=5 "$T/mbr.qcow2" "$T/p5"
expect_eq "$(mtype -i "$T/p5" ::/NEW.TXT)" "written through the mount" "--partition=5"
unmount_img "$T/p5"
mount_img -o partition=1,ro "$T/mbr.qcow2" "$T/p1"
expect_eq "$(debugfs -R 'cat /hello.txt' "$T/p1" 2>/dev/null)" "hello from ext4" "-o partition=1"
! dd if=/dev/zero of="$T/p1" bs=512 count=1 conv=notrunc status=none 2>/dev/null ||
    fail "a read-only partition mount took a write"
unmount_img "$T/p1"
! "$IMGFUSE" --partition=7 "$T/mbr.qcow2" "$T/p7" 2>"$T/err" || fail "--partition=7 mounted"
expect_err "has no partition 7; its partitions are 1, 5, 6"
! "$IMGFUSE" --partition=2 "$T/mbr.qcow2" "$T/p2" 2>"$T/err" || fail "--partition=2 mounted"
expect_err "extended partition"

# read-only directory mount: partition files refuse writes
mount_img -r "$T/mbr.qcow2" "$T/m"
! dd if=/dev/zero of="$T/m/mbr-p5.raw" bs=512 count=1 conv=notrunc status=none 2>/dev/null ||
    fail "a read-only mount's partition file took a write"
unmount_img "$T/m"

# ---- GPT made by sgdisk; a partition added through the disk file ----
gpt=$T/gpt.img
truncate -s 32M "$gpt"
sgdisk -n 1:2048:+8M -t 1:8300 -c 1:rootfs -n 2:0:+8M -t 2:ef00 -c 2:esp "$gpt" >/dev/null
g1=$(start "$gpt" 1); g2=$(start "$gpt" 2)
mkfs.ext4 -q -F -L groot -E offset=$((g1 * S)) "$gpt" 8M
mkfs.fat -n GESP --offset="$g2" "$gpt" 8192 >/dev/null
mount_img "$gpt" "$T/m2"
expect_eq "$(ls "$T/m2" | tr '\n' ' ')" "gpt-p1.raw gpt-p2.raw gpt.raw " "GPT listing"
fsck.ext4 -n "$T/m2/gpt-p1.raw" >/dev/null 2>&1 || fail "fsck of GPT p1"
fsck.fat -n "$T/m2/gpt-p2.raw" >/dev/null || fail "fsck of GPT p2"
sgdisk -n 3:0:+4M -t 3:8300 -c 3:added "$T/m2/gpt.raw" >/dev/null
unmount_img "$T/m2"
mount_img "$gpt" "$T/m2"
expect_eq "$(stat -c %s "$T/m2/gpt-p3.raw" 2>/dev/null)" $((4 << 20)) "partition added through the disk file"
unmount_img "$T/m2"
"$IMGFUSE" info --json "$gpt" | python3 -c '
import json, sys
t = json.load(sys.stdin)["partition-table"]
assert t["type"] == "gpt", t
p = {x["number"]: x for x in t["partitions"]}
assert p[1]["name"] == "rootfs" and p[1]["filesystem"] == "ext4" and p[1]["label"] == "groot", p[1]
assert p[2]["filesystem"] == "vfat" and p[2]["label"] == "GESP", p[2]
assert p[3]["name"] == "added" and "filesystem" not in p[3], p[3]
' || fail "GPT info"
echo ok
