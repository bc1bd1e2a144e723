#!/bin/bash
# The demo of `bash scripts/run.sh` with no image (scripts/demo.sh): a qcow2
# with a GPT, an ext4 and a FAT partition, mounted in directory mode; the
# commands it prints work, and unmounting leaves no mount behind.
. "$(dirname "$0")/../lib.sh"

grep -q 'exec bash scripts/demo.sh "$PWD/build/imgfuse"' "$ROOT/scripts/run.sh" \
    || fail "run.sh does not run the demo when given no image"
d=$T/demo
_MOUNTS+=("$d/mnt")
bash "$ROOT/scripts/demo.sh" "$IMGFUSE" "$d" > "$T/out" 2>&1 || fail "demo: $(cat "$T/out")"
m=$d/mnt
is_mounted "$m" || fail "the demo is not mounted"
expect_eq "$(ls "$m" | tr '\n' ' ')" "demo-p1.raw demo-p2.raw demo.raw " "files of the demo"
qemu-img info -U "$d/demo.qcow2" | grep -q '^file format: qcow2' || fail "demo image is not a qcow2"
ls -A "$d" | grep -q '^\.build' && fail "build leftovers in $d"

# every command the demo prints runs and shows what it should
cmds=$(sed -n 's/^    \(fdisk\|debugfs\|mdir\|mtype\) /\1 /p' "$T/out" | sed 's/  *#.*//')
expect_eq "$(echo "$cmds" | wc -l)" 5 "commands printed"
out=$(cd "$T" && PATH=$(dirname "$IMGFUSE"):$PATH bash -e -c "$cmds" 2>&1) || fail "printed commands: $out"
echo "$out" | grep -q "demo.raw1 *2048 *51199" || fail "fdisk -l: $out"
echo "$out" | grep -q "Microsoft basic data" || fail "fdisk -l: $out"
echo "$out" | grep -q "hello.txt" || fail "debugfs ls: $out"
echo "$out" | grep -q "^Hello from an ext4 partition" || fail "debugfs cat: $out"
echo "$out" | grep -q "README" || fail "mdir: $out"
echo "$out" | grep -q "each partition appears as NAME-pN.raw" || fail "mtype: $out"
fsck.ext4 -n -f "$m/demo-p1.raw" >"$T/fsck" 2>&1 || fail "fsck.ext4: $(cat "$T/fsck")"
fsck.fat -n "$m/demo-p2.raw" >"$T/fsck" 2>&1 || fail "fsck.fat: $(cat "$T/fsck")"

# run again while mounted: says so, mounts nothing more
bash "$ROOT/scripts/demo.sh" "$IMGFUSE" "$d" > "$T/out2" 2>&1 || fail "second run: $(cat "$T/out2")"
grep -q "mounted already" "$T/out2" || fail "second run: $(cat "$T/out2")"
expect_eq "$(grep -c " $m fuse" /proc/mounts)" 1 "mounts of the demo"

# the printed unmount command leaves nothing mounted
$(sed -n 's/^    \(fusermount3 -u .*\)/\1/p' "$T/out")
is_mounted "$m" && fail "still mounted after the printed unmount command"
grep -q " $d" /proc/mounts && fail "a mount left under $d"
echo ok
