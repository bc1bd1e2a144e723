#!/bin/bash
# Hostile and broken vmdk images fail with a clear message naming the file,
# never a crash or a hang: the fuzzed qemu sample, truncated files, absurd
# headers, tables and grains pointing beyond the file (EIO on read), a
# damaged compressed grain, missing or escaping extents, a parent loop and
# damaged seSparse extents.
. "$(dirname "$0")/../lib.sh"

cd "$T"
# expect_error FILE PATTERN: opening fails (imgfuse info), message matches
expect_error() {
    local img=$1 pattern=$2 rc=0
    timeout 20 "$IMGFUSE" info -F vmdk "$img" >/dev/null 2>err || rc=$?
    [ $rc -ne 0 ] || fail "$img opened; expected: $pattern"
    [ $rc -lt 124 ] || fail "$img: imgfuse hung or died (rc=$rc)"
    grep -q -- "$pattern" err || fail "$img: message '$(cat err)' lacks '$pattern'"
    note "$(basename "$img"): $(head -1 err)"
}
# patch FILE OFFSET HEXBYTES
patch() { printf "$(echo "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek=$2 conv=notrunc 2>/dev/null; }

cp "$DATA/vmdk/afl9-2014.vmdk" .
expect_error afl9-2014.vmdk "afl9-2014.vmdk: "

src=$DATA/vmdk/gen-vmdk-monolithicSparse.vmdk
head -c 4096 "$src" >cut.vmdk
expect_error cut.vmdk "lies beyond the end of the file"
cp "$src" cap.vmdk; patch cap.vmdk 12 ffffffffffff0000
expect_error cap.vmdk "absurd capacity\|too large"
cp "$src" grain.vmdk; patch grain.vmdk 20 0300000000000000
expect_error grain.vmdk "bad grain size"
cp "$src" gtes.vmdk; patch gtes.vmdk 44 00000000
expect_error gtes.vmdk "bad grain table size"
cp "$src" text.vmdk; patch text.vmdk 75 0a
expect_error text.vmdk "text mode"
head -c 60000 "$DATA/vmdk/iotest-version3-2013.vmdk" >nofooter.vmdk
expect_error nofooter.vmdk "footer"
zcat "$DATA/vmdk/sesparse.vmdk.gz" >ses.vmdk
cp ses.vmdk ses-journal.vmdk; patch ses-journal.vmdk $((512 + 24)) 01
expect_error ses-journal.vmdk "journal needs replaying"
cp ses.vmdk ses-gd.vmdk; patch ses-gd.vmdk 128 ffffffff
expect_error ses-gd.vmdk "absurd sizes\|beyond the end"
cp ses.vmdk ses-grain.vmdk; patch ses-grain.vmdk 24 10
expect_error ses-grain.vmdk "grain size 16"
head -c 3000 /dev/urandom | tr -d '\0' >noise.vmdk
expect_error noise.vmdk "noise.vmdk"

desc() { printf '# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="monolithicFlat"\n%s\n' "$2" >"$1"; }
truncate -s 1M flat.raw
desc missing.vmdk 'RW 2048 FLAT "nothere.raw" 0'
expect_error missing.vmdk "nothere.raw.*No such file"
mkdir -p sub && desc sub/escape.vmdk 'RW 2048 FLAT "../flat.raw" 0'
expect_error sub/escape.vmdk "lies outside"
desc short.vmdk 'RW 4096 FLAT "flat.raw" 0'
expect_error short.vmdk "shorter than the descriptor says"
desc huge.vmdk 'RW 99999999999999999 FLAT "flat.raw" 0'
expect_error huge.vmdk "absurd size"
desc rdm.vmdk 'RW 2048 VMFSRDM "flat.raw"'
expect_error rdm.vmdk "extent type 'VMFSRDM' is not supported"
desc none.vmdk ''
expect_error none.vmdk "names no extents"
printf '# Disk DescriptorFile\nCID=1\nparentCID=2\nparentFileNameHint="loop.vmdk"\nRW 2048 FLAT "flat.raw" 0\n' >loop.vmdk
expect_error loop.vmdk "loops"

# tables and grains beyond the end of the file: the mount opens, reads fail
# with EIO and the log says which file
cp "$src" badgt.vmdk
gd=$(( $(od -An -tu8 -j56 -N8 badgt.vmdk) * 512 ))
patch badgt.vmdk $gd ffffff7f
cp "$src" badgrain.vmdk
gt=$(( $(od -An -tu4 -j$gd -N4 badgrain.vmdk) * 512 ))
patch badgrain.vmdk $gt ffffff7f
cp "$DATA/vmdk/gen-vmdk-streamOptimized.vmdk" badz.vmdk
patch badz.vmdk $((128 * 512 + 12)) 00000000000000000000000000000000
for img in badgt badgrain badz; do
    mount_img -r -F vmdk $img.vmdk "$T/mnt-$img" 2>log-$img
    rc=0
    timeout 20 dd if="$T/mnt-$img" of=/dev/null bs=64k count=1 2>err || rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 124 ] && grep -q "Input/output error" err ||
        fail "$img: read gave rc=$rc $(cat err)"
    unmount_img "$T/mnt-$img"
    note "$img: EIO on read"
done

# `imgfuse check` finds a redundant grain table that disagrees with the
# primary one, and `-r all` makes them equal again
cp "$src" rgt.vmdk
rgd=$(( $(od -An -tu8 -j48 -N8 rgt.vmdk) * 512 ))
rgt=$(( $(od -An -tu4 -j$rgd -N4 rgt.vmdk) * 512 ))
patch rgt.vmdk $((rgt + 8)) 39300000
rc=0
"$IMGFUSE" check rgt.vmdk >out 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "redundant grain table differs" out || fail "check: rc=$rc $(cat out)"
"$IMGFUSE" check -r all rgt.vmdk >out 2>&1 || fail "check -r all: $(cat out)"
"$IMGFUSE" check rgt.vmdk >out 2>&1 || fail "still corrupt after repair: $(cat out)"
cmp rgt.vmdk "$src" || fail "repair did not restore the redundant table"
