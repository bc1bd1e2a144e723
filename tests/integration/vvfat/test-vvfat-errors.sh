#!/bin/bash
# vvfat refusals: bad options, a missing directory, a file given as DIR, a
# tree too big for the disk (the message says how much it needs and what to
# do), a file of 4 GiB or more, a root directory with more entries than
# FAT16's 512 (fine on FAT32), and a tree that only fits with size=. Each
# must fail quickly with a sentence naming the problem, never crash, and
# leave DIR as it was.
. "$(dirname "$0")/../lib.sh"

mkdir "$T/d"
echo x >"$T/d/file.txt"
before=$(cd "$T/d" && ls -lA --time-style=+%s | sha256sum)

# bad SOURCE PATTERN: imgfuse info fails with PATTERN in the message
bad() {
    expect_error "$1" "$2"
}

bad "fat:$T/missing" "no such directory"
bad "fat:$T/d/file.txt" "is not a directory"
bad "fat:" "no directory given"
bad "fat:floppy:" "no directory given"
bad "driver=vvfat" "no directory given"
bad "driver=vvfat,dir=$T/d,fat-type=24" "is not one of 12, 16, 32"
bad "driver=vvfat,dir=$T/d,floppy=maybe" "floppy"
bad "driver=vvfat,dir=$T/d,label=abcdefghijkl" "at most 11"
bad "driver=vvfat,dir=$T/d,label=a*b" "a FAT label cannot"
bad "driver=vvfat,dir=$T/d,floppy=on,fat-type=32" "a floppy is FAT12 or FAT16"
bad "driver=vvfat,dir=$T/d,fat-type=16,size=1G" "size= is for FAT32"
bad "driver=vvfat,dir=$T/d,fat-type=32,size=1M" "out of range"
bad "driver=vvfat,dir=$T/d,fat-type=32,size=4T" "out of range"
bad "driver=vvfat,dir=$T/d,floppy=on,size=1G" "size= is for FAT32 hard disks"
bad "driver=vvfat,dir=$T/d,fat-typo=12" "fat-type"
bad "driver=vvfat,dir=$T/d,size=lots" "size"
note "bad options refused"

# too big: 600 MiB (sparse) on the 504 MiB FAT16 disk; then it fits with size=
mkdir "$T/big"
truncate -s 600M "$T/big/huge.bin"
bad "fat:$T/big" "needs 600.0 MiB of FAT space"
grep -q "use fat-type=32,size=1G" "$T/err" || fail "no size= hint: $(cat "$T/err")"
bad "fat:floppy:$T/d/../big" "drop floppy"
"$IMGFUSE" info "driver=vvfat,dir=$T/big,fat-type=32,size=1G" >"$T/info" 2>/dev/null ||
    fail "the size the hint gave does not open"
grep -q "virtual size: 1 GiB" "$T/info" || fail "size=1G: $(cat "$T/info")"
note "600 MiB tree: refused on FAT16 saying what it needs; opens with size=1G"

# a file FAT cannot hold
mkdir "$T/4g"
truncate -s 4G "$T/4g/four.bin"
bad "driver=vvfat,dir=$T/4g,fat-type=32,size=8G" "four.bin: a FAT file holds at most 4 GiB"

# 600 long names: too many for a FAT16 root (512 entries), fine on FAT32
mkdir "$T/wide"
for i in $(seq 1 600); do : >"$T/wide/file number $i.txt"; done
bad "fat:$T/wide" "a FAT16 root directory holds 512"
"$IMGFUSE" info "fat:32:$T/wide" >/dev/null 2>&1 || fail "600 names on FAT32"
note "4 GiB file and an overfull FAT16 root refused"

expect_eq "$(cd "$T/d" && ls -lA --time-style=+%s | sha256sum)" "$before" "DIR untouched"
note "refusals leave DIR as it was"
