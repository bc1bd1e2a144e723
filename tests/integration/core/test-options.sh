#!/bin/bash
# The I/O and threading options each work end to end: --cache=none,
# --aio=io_uring, --discard=ignore, -s, --threads, -d; info --json.
. "$(dirname "$0")/../lib.sh"

img=$T/o.img
qemu-img create -q -f raw "$img" 16M
head -c 4M /dev/urandom > "$T/r"

check_rw() {    # check_rw LABEL imgfuse-options...
    local label=$1; shift
    mount_img "$@" "$img" "$T/m"
    dd if="$T/r" of="$T/m" bs=64k seek=16 conv=notrunc status=none
    printf 'unaligned' | dd of="$T/m" bs=1 seek=777 conv=notrunc status=none
    cmp <(dd if="$T/m" bs=64k skip=16 count=64 status=none) "$T/r" || fail "$label: read back"
    unmount_img "$T/m"
    cmp <(dd if="$img" bs=64k skip=16 count=64 status=none) "$T/r" || fail "$label: image content"
    expect_eq "$(dd if="$img" bs=1 skip=777 count=9 status=none)" unaligned "$label: unaligned"
    note "$label ok"
}
check_rw "cache=none" --cache=none
check_rw "aio=io_uring" --aio=io_uring
check_rw "aio=io_uring,cache=none" -o aio=io_uring,cache=none
check_rw "single-threaded" -s
check_rw "threads=2" --threads 2

# --writeback-cache: the kernel knows the size of a file mount, small
# writes land in the image by unmount, a write past the end fails at close
mount_img --writeback-cache "$img" "$T/m"
expect_eq "$(stat -c %s "$T/m")" 16777216 "writeback-cache: size"
dd if="$T/r" of="$T/m" bs=4k seek=512 conv=notrunc status=none
if printf 'x' | dd of="$T/m" bs=1 seek=16777216 conv=notrunc,fsync status=none 2>"$T/err"; then
    fail "writeback-cache: write past the end reported success"
fi
unmount_img "$T/m"
cmp <(dd if="$img" bs=4k skip=512 count=1024 status=none) "$T/r" || fail "writeback-cache: data"
expect_eq "$(stat -c %s "$img")" 16777216 "writeback-cache: image size"

# discard=ignore: a punched range reads as zeroes but the space stays
# (ZERO_RANGE may leave unwritten extents, so count blocks, not SEEK_DATA)
blocks0=$(stat -c %b "$img")
mount_img --discard=ignore "$img" "$T/m"
fallocate -p -o 1M -l 1M "$T/m"
expect_eq "$(dd if="$T/m" bs=1M skip=1 count=1 status=none | tr -d '\0' | wc -c)" 0 "punched reads zero"
unmount_img "$T/m"
expect_eq "$(stat -c %b "$img")" "$blocks0" "discard=ignore changed the allocation"
mount_img "$img" "$T/m"
fallocate -p -o 1M -l 1M "$T/m"
unmount_img "$T/m"
expect_eq "$(stat -c %b "$img")" "$((blocks0 - 2048))" "discard=unmap did not free 1 MiB"

# -d: foreground with FUSE's debug trace
timeout 20 "$IMGFUSE" -d "$img" "$T/dbg" >"$T/dbg.log" 2>&1 &
pid=$!
for _ in $(seq 100); do is_mounted "$T/dbg" && break; sleep 0.05; done
is_mounted "$T/dbg" || fail "-d did not mount"
stat "$T/dbg" >/dev/null
fusermount3 -u "$T/dbg"
wait $pid || fail "-d exit status"
grep -q "INIT" "$T/dbg.log" || fail "-d printed no FUSE trace"

# statfs answers on the mount (df works), sized like the image
mount_img "$img" "$T/m"
expect_eq "$(stat -f -c '%S %b' "$T/m")" "4096 4096" "statfs block size and count"
unmount_img "$T/m"

# info --json is machine-readable and says what the text says
"$IMGFUSE" info --json "$img" > "$T/info.json"
python3 - "$T/info.json" "$img" <<'PY' || fail "info --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "raw", d
assert d["virtual-size"] == 16 << 20, d
assert d["filename"] == sys.argv[2], d
assert d["protocol"]["protocol"] == "file", d
assert isinstance(d["backing-chain"], list)
assert d["protocol"]["locks-held-by-others"] == "none", d
PY
"$IMGFUSE" info "$img" | grep -q "virtual size: 16 MiB (16777216 bytes)" || fail "info text"
echo ok
