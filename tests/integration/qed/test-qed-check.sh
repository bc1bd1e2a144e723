#!/bin/bash
# The need-check flag: an image qemu-io left with it set (abort after
# writes), with clusters leaked at the end, mounts read-only with a warning
# and reads as qemu reads it; `imgfuse check` counts the leaks, `check -r
# leaks` repairs them; a read-write mount repairs them and clears the flag
# before it serves a write; qemu-img check then finds the image clean.
. "$(dirname "$0")/../lib.sh"

flag() { echo $(( $(od -An -tu1 -j16 -N1 "$1") & 2 )); }

qemu-img create -q -f qed -o cluster_size=4K,table_size=2 "$T/a.qed" 8M
(qemu-io -f qed -c "write -P 5 0 64k" -c "write -P 6 1M 8k" -c abort "$T/a.qed" \
    >/dev/null 2>&1 || true) 2>/dev/null
expect_eq "$(flag "$T/a.qed")" 2 "qemu-io abort: need-check flag"
clean=$(stat -c %s "$T/a.qed")
truncate -s $((clean + 12288)) "$T/a.qed"      # three clusters leaked
qemu-img convert -U -f qed -O raw "$T/a.qed" "$T/a.shadow"

cp "$T/a.qed" "$T/b.qed"
cp "$T/a.qed" "$T/c.qed"

mount_img -r "$T/a.qed" "$T/ro.raw" 2>"$T/ro.log"
grep -q "needs a consistency check" "$T/ro.log" ||
    fail "read-only mount: no warning: $(cat "$T/ro.log")"
cmp -s "$T/ro.raw" "$T/a.shadow" || fail "read-only mount: content differs"
unmount_img "$T/ro.raw"
expect_eq "$(stat -c %s "$T/a.qed")" $((clean + 12288)) "read-only mount: file size"
expect_eq "$(flag "$T/a.qed")" 2 "read-only mount: flag"
note "read-only: warned, reads as qemu"

rc=0
"$IMGFUSE" check "$T/a.qed" >"$T/out" 2>&1 || rc=$?
expect_eq "$rc" 3 "check: exit status"
grep -q "^3 leaked clusters" "$T/out" || fail "check: $(cat "$T/out")"
"$IMGFUSE" check -r leaks "$T/a.qed" >"$T/out" 2>&1 || fail "check -r leaks: $(cat "$T/out")"
grep -q "repaired 0 corruptions and 3 leaked clusters" "$T/out" ||
    fail "check -r leaks: $(cat "$T/out")"
expect_eq "$(stat -c %s "$T/a.qed")" "$clean" "check -r leaks: file size"
expect_eq "$(flag "$T/a.qed")" 0 "check -r leaks: flag"
qemu-img check -q "$T/a.qed" || fail "check -r leaks: qemu-img check"
note "check: 3 leaks found, check -r leaks repairs them"

mount_img "$T/b.qed" "$T/rw.raw" 2>"$T/rw.log"
# repaired at open, before any write
expect_eq "$(flag "$T/b.qed")" 0 "read-write mount: flag at open"
expect_eq "$(stat -c %s "$T/b.qed")" "$clean" "read-write mount: leaks cut"
cmp -s "$T/rw.raw" "$T/a.shadow" || fail "read-write mount: content differs"
printf 'after' | dd of="$T/rw.raw" bs=1 seek=3000000 conv=notrunc status=none
printf 'after' | dd of="$T/a.shadow" bs=1 seek=3000000 conv=notrunc status=none
unmount_img "$T/rw.raw"
oracle_agrees "$T/b.qed" qed "$T/a.shadow" "read-write mount"
note "read-write: repaired at open, then written, clean"

# an L2 entry beyond the end: an error, found by check, cleared by -r all
off=$(qemu-img map --output=json -f qed "$T/c.qed" | grep -o '"offset": [0-9]*' | head -1 | cut -d' ' -f2)
l2=$(od -An -tu8 -j4096 -N8 "$T/c.qed" | tr -d ' ')
printf '\0\0\0\0\0\1\0\0' | dd of="$T/c.qed" bs=1 seek=$((l2 + 8)) conv=notrunc status=none
rc=0
"$IMGFUSE" check "$T/c.qed" >"$T/out" 2>&1 || rc=$?
expect_eq "$rc" 2 "check of a bad entry: exit status ($(cat "$T/out"))"
# the cluster the entry lost stays, as a leak between used clusters
rc=0
"$IMGFUSE" check -r all "$T/c.qed" >"$T/out" 2>&1 || rc=$?
expect_eq "$rc" 3 "check -r all: exit status ($(cat "$T/out"))"
grep -q "repaired 1 corruptions" "$T/out" || fail "check -r all: $(cat "$T/out")"
grep -q "^1 leaked clusters" "$T/out" || fail "check -r all: $(cat "$T/out")"
no_corruption "$T/c.qed" "check -r all"
[ -n "$off" ] || fail "no data cluster in the image"
note "check -r all: bad entry cleared"
