#!/bin/bash
# Random writes (data, zeroes, hole punches) through a read-write mount, mirrored into
# a shadow file, on images qemu-img made and images imgfuse create made with
# each option: afterwards qemu-img check finds them clean and qemu-img
# compare finds them equal to the shadow. cp of a raw file into a freshly
# created mount of each subformat gives an image qemu reads back equal.
. "$(dirname "$0")/../lib.sh"
LIB="python3 $(dirname "$0")/vhdx-lib.py"
SIZE=48M

# Every image gets its own workload through one directory mount (mounts
# are cheap, unmounts are not), then qemu checks and compares each.
imgs=() whats=()
add() { imgs+=("$1"); whats+=("$2"); }

n=0
for opts in "subformat=dynamic" "subformat=fixed" "block_state_zero=off" \
            "subformat=fixed,block_state_zero=off" "block_size=1M,log_size=2M"; do
    n=$((n + 1))
    qemu-img create -q -f vhdx -o "$opts" "$T/q$n.vhdx" $SIZE
    add "$T/q$n.vhdx" "qemu-img create $opts"
done
for opts in "subformat=dynamic" "subformat=fixed" "block_state_zero=off" \
            "subformat=fixed,block_state_zero=off" "block_size=0" \
            "block_size=1M,log_size=3M" "block_size=256M"; do
    n=$((n + 1))
    "$IMGFUSE" create -F vhdx -o "$opts" "$T/i$n.vhdx" $SIZE >/dev/null
    qemu-img check -q "$T/i$n.vhdx" || fail "fresh imgfuse create $opts: check"
    qemu-img info "$T/i$n.vhdx" | grep -q "virtual size: 48 MiB" ||
        fail "imgfuse create $opts: qemu-img info"
    add "$T/i$n.vhdx" "imgfuse create $opts"
done
for i in "${!imgs[@]}"; do
    qemu-img convert -f vhdx -O raw "${imgs[$i]}" "$T/shadow$i.raw"
done
mkdir "$T/mnt"
mount_img "${imgs[@]}" "$T/mnt"
for i in "${!imgs[@]}"; do
    raw=$T/mnt/$(basename "${imgs[$i]}" .vhdx).raw
    $LIB randwrite "$raw" "$T/shadow$i.raw" "$i" 60
    # discard (whole blocks become ZERO blocks) and zeroing, mirrored
    for f in "$raw" "$T/shadow$i.raw"; do
        fallocate -p -o 3M -l 9M "$f"
        fallocate -z -o 20M -l 1536K "$f"
    done
    cmp -s "$raw" "$T/shadow$i.raw" || fail "${whats[$i]}: the mount reads differently from the shadow"
done
unmount_img "$T/mnt"
for i in "${!imgs[@]}"; do
    qemu-img check -q "${imgs[$i]}" || fail "${whats[$i]}: qemu-img check is not clean"
    qemu-img compare -q -f vhdx -F raw "${imgs[$i]}" "$T/shadow$i.raw" ||
        fail "${whats[$i]}: qemu sees other data"
    note "${whats[$i]}: ok"
done

# cp a raw file into a freshly created mount
head -c 5M /dev/urandom >"$T/src.raw"
truncate -s 20M "$T/src.raw"
head -c 3M /dev/urandom | dd of="$T/src.raw" bs=1M seek=14 conv=notrunc status=none
for sub in dynamic fixed; do
    mount_img --create 20M --create-opts subformat=$sub -F vhdx "$T/cp-$sub.vhdx" "$T/cp.raw"
    cp "$T/src.raw" "$T/cp.raw"
    unmount_img "$T/cp.raw"
    qemu-img check -q "$T/cp-$sub.vhdx" || fail "cp into $sub: check"
    qemu-img compare -q -f vhdx -F raw "$T/cp-$sub.vhdx" "$T/src.raw" || fail "cp into $sub: differs"
done

# bad create options are refused clearly
if "$IMGFUSE" create -F vhdx -o block_size=3M "$T/bad.vhdx" 8M 2>"$T/err"; then
    fail "block_size=3M accepted"
fi
grep -q "power of two" "$T/err" || fail "block_size message: $(cat "$T/err")"
if "$IMGFUSE" create -F vhdx -o log_size=100K "$T/bad.vhdx" 8M 2>"$T/err"; then
    fail "log_size=100K accepted"
fi
grep -q "log_size" "$T/err" || fail "log_size message: $(cat "$T/err")"
echo ok
