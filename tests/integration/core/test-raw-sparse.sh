#!/bin/bash
# SEEK_DATA/SEEK_HOLE and st_blocks come from block status; fallocate modes.
. "$(dirname "$0")/../lib.sh"

img=$T/sparse.img
truncate -s 32M "$img"
qemu-io -f raw -c 'write -P 1 4M 1M' -c 'write -P 2 20M 2M' "$img" >/dev/null
mnt=$T/m
mount_img "$img" "$mnt"

python3 - "$mnt" <<'PY'
import os, sys, errno
fd = os.open(sys.argv[1], os.O_RDONLY)
M = 1 << 20
def seek(off, how):
    try:
        return os.lseek(fd, off, how)
    except OSError as e:
        return -e.errno
assert seek(0, os.SEEK_DATA) == 4 * M, seek(0, os.SEEK_DATA)
assert seek(4 * M, os.SEEK_HOLE) == 5 * M, seek(4 * M, os.SEEK_HOLE)
assert seek(5 * M, os.SEEK_DATA) == 20 * M
assert seek(20 * M, os.SEEK_HOLE) == 22 * M
assert seek(22 * M, os.SEEK_DATA) == -errno.ENXIO
assert seek(23 * M, os.SEEK_HOLE) == 23 * M
assert seek(32 * M, os.SEEK_HOLE) == -errno.ENXIO
st = os.fstat(fd)
assert st.st_blocks * 512 == 3 * M, st.st_blocks
PY
[ $? -eq 0 ] || fail "seek/blocks"

python3 - "$mnt" <<'PY'
import os, sys, errno, ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
KEEP, PUNCH, COLLAPSE, ZERO = 1, 2, 8, 16
M = 1 << 20
fd = os.open(sys.argv[1], os.O_RDWR)
def fa(mode, off, ln):
    r = libc.fallocate(fd, mode, off, ln)
    return 0 if r == 0 else -ctypes.get_errno()
# punch a hole in the middle of the 2 MiB data run
assert fa(PUNCH | KEEP, 20 * M + 512 * 1024, 512 * 1024) == 0
assert os.pread(fd, 512 * 1024, 20 * M + 512 * 1024) == bytes(512 * 1024)
assert os.pread(fd, 4, 20 * M) == b'\x02' * 4
assert os.lseek(fd, 20 * M, os.SEEK_HOLE) == 20 * M + 512 * 1024
# zero range: zeroes, the size stays
assert fa(ZERO, 4 * M, 4096) == 0
assert os.pread(fd, 4096, 4 * M) == bytes(4096)
assert os.pread(fd, 1, 4 * M + 4096) == b'\x01'
# mode 0 inside the file succeeds and allocates
assert fa(0, 10 * M, M) == 0
assert os.pread(fd, 16, 10 * M) == bytes(16)
# collapse/insert are not for disks
assert fa(COLLAPSE, 0, M) == -errno.EOPNOTSUPP
# punch without keep-size: the VFS refuses it, as on any file system
assert fa(PUNCH, 0, 4096) == -errno.EOPNOTSUPP
# beyond the end of a fixed disk
assert fa(0, 32 * M, M) == -errno.ENOSPC
assert os.fstat(fd).st_size == 32 * M
PY
[ $? -eq 0 ] || fail "fallocate"
unmount_img "$mnt"
# the hole is really in the image file now (space freed)
python3 - "$img" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
M = 1 << 20
assert os.lseek(fd, 20 * M, os.SEEK_HOLE) == 20 * M + 512 * 1024
PY
[ $? -eq 0 ] || fail "punched range is not a hole in the image"
qemu-io -f raw -c 'read -P 0 20.5M 512k' -c 'read -P 2 21M 1M' "$img" | grep -c 'read ' | grep -q 2 \
    || fail "qemu-io disagrees after fallocate"
echo ok
