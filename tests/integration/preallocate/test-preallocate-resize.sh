#!/bin/bash
# Resize and discard through the preallocate filter, on a growable raw
# image: a grow is preallocated like a write past the end (the image file
# runs 8M ahead while the mounted file shows the new size), a shrink drops
# the tail and cuts exactly, a punched hole reaches the image file, and the
# image equals a shadow file given the same changes.
. "$(dirname "$0")/../lib.sh"
MiB=1048576

head -c 1M /dev/urandom >"$T/a.raw"
cp "$T/a.raw" "$T/shadow"
mount_img --growable --preallocate=8M "$T/a.raw" "$T/m.raw"
python3 - "$T/a.raw" "$T/m.raw" <<'PY' || fail "sizes while open"
import os, sys
img, mnt = sys.argv[1:]
M = 1 << 20
fd = os.open(mnt, os.O_RDWR)
def sizes(what, want_img, want_mnt):
    got = (os.stat(img).st_size, os.fstat(fd).st_size)
    print(f"  {what}: image file {got[0]}, mounted {got[1]}")
    assert got == (want_img, want_mnt), f"{what}: {got} != {(want_img, want_mnt)}"
os.ftruncate(fd, 3 * M)
sizes("grow to 3M", 11 * M, 3 * M)
assert os.pread(fd, 4096, 2 * M) == bytes(4096)
os.ftruncate(fd, 512 * 1024)
sizes("shrink to 512K", 512 * 1024, 512 * 1024)
os.ftruncate(fd, 2 * M)
sizes("grow to 2M", 10 * M, 2 * M)
assert os.pread(fd, 8192, 2 * M - 4096) == bytes(4096), "read past the end"
os.close(fd)
PY
fallocate -p -o 0 -l 256K "$T/m.raw"
unmount_img "$T/m.raw"
truncate -s 512K "$T/shadow"
truncate -s 2M "$T/shadow"
dd if=/dev/zero of="$T/shadow" bs=256K count=1 conv=notrunc status=none
expect_eq "$(stat -c %s "$T/a.raw")" $((2 * MiB)) "image length after unmount"
cmp "$T/a.raw" "$T/shadow" || fail "the image differs from the shadow"
expect_eq "$(seek_map "$T/a.raw" | head -1 | cut -d' ' -f1)" 262144 \
    "first data after the punched hole"
note "grow ahead by 8M, shrink exact, hole punched, equal to the shadow"
