#!/bin/bash
# Small sequential writes are gathered and reach the image as larger ones
# (fusefs/wcache.c). What a program sees must not change: reads through the
# mount see every acknowledged write at once, close and fsync put them in
# the image, an idle buffer reaches the image within milliseconds without
# either, a later overlapping write lands last, and a write-out that fails
# is reported by the next fsync, not lost silently.
. "$(dirname "$0")/../lib.sh"

# -- 1. a stream of 4 KiB writes mixed with reads and overlapping writes ------
truncate -s 64M "$T/a.raw"
cp "$T/a.raw" "$T/shadow.raw"
touch "$T/m"
mount_img -F raw "$T/a.raw" "$T/m"
python3 - "$T/m" "$T/shadow.raw" <<'PY'
import os, random, sys
r = random.Random(7)
fd = os.open(sys.argv[1], os.O_RDWR)
sh = os.open(sys.argv[2], os.O_RDWR)
def w(off, data):
    assert os.pwrite(fd, data, off) == len(data)
    os.pwrite(sh, data, off)
for run in range(40):
    off = r.randrange(0, 60 << 20) & ~4095
    for i in range(r.randrange(2, 300)):          # a sequential stream
        data = r.randbytes(r.choice([512, 4096, 4096, 8192, 65536]))
        w(off, data)
        if r.random() < 0.05:                      # read back what was just written
            assert os.pread(fd, len(data), off) == data, "read-back at %d" % off
        if r.random() < 0.03:                      # overwrite inside the stream
            o2 = max(0, off - r.randrange(0, 16384))
            w(o2, r.randbytes(r.randrange(1, 9000)))
        off += len(data)
    if r.random() < 0.3:
        os.fsync(fd)
size = 64 << 20
for off in range(0, size, 1 << 20):
    assert os.pread(fd, 1 << 20, off) == os.pread(sh, 1 << 20, off), "differs at %d" % off
os.close(fd)
PY
# after close, the image file itself holds everything, while still mounted
cmp "$T/a.raw" "$T/shadow.raw" || fail "image differs from the shadow after close"
note "stream with reads and overlapping writes: equal to the shadow"

# -- 2. an idle buffer reaches the image without close or fsync --------------
python3 - "$T/m" "$T/a.raw" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
import mmap
buf = mmap.mmap(-1, 4096)
for i in range(16):
    buf[:] = bytes([0x40 + i]) * 4096
    os.pwrite(fd, buf, (32 << 20) + i * 4096)
time.sleep(0.2)
img = os.open(sys.argv[2], os.O_RDONLY)
for i in range(16):
    got = os.pread(img, 4096, (32 << 20) + i * 4096)
    assert got == bytes([0x40 + i]) * 4096, "block %d not in the image yet" % i
os.close(fd)
PY
note "idle gathered writes reached the image with the file still open"
unmount_img "$T/m"

# -- 3. qcow2: 4 KiB sequential writes, then the oracle ----------------------
qemu-img create -q -f qcow2 "$T/b.qcow2" 32M
head -c 32M /dev/urandom > "$T/src.raw"
mount_img -F qcow2 "$T/b.qcow2" "$T/m"
dd if="$T/src.raw" of="$T/m" bs=4k oflag=direct conv=notrunc status=none
unmount_img "$T/m"
qemu-img check -q "$T/b.qcow2" || fail "qemu-img check after 4 KiB writes"
qemu-img compare -q -f qcow2 -F raw "$T/b.qcow2" "$T/src.raw" ||
    fail "qcow2 written in 4 KiB pieces differs from its source"
note "qcow2 written 4 KiB at a time: qemu-img check clean, compare equal"

# -- 4. a write-out that fails is reported by fsync --------------------------
# 512 KiB of 4 KiB writes into a sparse image on a 256 KiB file system: the
# writes are gathered, the idle write-out fails, and fsync must say so.
mkdir "$T/small"
mount -t tmpfs -o size=256k tmpfs "$T/small"
trap 'umount "$T/small" 2>/dev/null || true; _cleanup' EXIT
truncate -s 16M "$T/small/sparse.raw"
mount_img -F raw "$T/small/sparse.raw" "$T/m"
python3 - "$T/m" <<'PY'
import errno, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
err = None
try:
    for i in range(128):
        os.pwrite(fd, b'\xab' * 4096, i * 4096)
    time.sleep(0.2)                       # idle: written out, and it fails
    os.fsync(fd)
except OSError as e:
    err = e.errno
assert err == errno.ENOSPC, "expected ENOSPC from a write or fsync, got %r" % err
try:
    os.close(fd)
except OSError:
    pass
PY
unmount_img "$T/m"
note "a failed write-out reached the program as ENOSPC"

# -- 5. off: IMGFUSE_WRITE_COMBINE=0 and --share-rw write straight through ---
truncate -s 8M "$T/c.raw"
IMGFUSE_WRITE_COMBINE=0 mount_img -F raw "$T/c.raw" "$T/m"
python3 - "$T/m" "$T/c.raw" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
for i in range(8):
    os.pwrite(fd, b'\x5a' * 4096, i * 4096)
img = os.open(sys.argv[2], os.O_RDONLY)
assert os.pread(img, 8 * 4096, 0) == b'\x5a' * 8 * 4096, "not written through"
PY
unmount_img "$T/m"
note "IMGFUSE_WRITE_COMBINE=0 writes straight through"
# -- 6. write-only opens skip the page cache; cached readers stay right -----
truncate -s 16M "$T/d.raw"
mount_img -F raw "$T/d.raw" "$T/m"
python3 - "$T/m" <<'PY'
import mmap, os, sys
m = sys.argv[1]
r = os.open(m, os.O_RDONLY)
mm = mmap.mmap(r, 1 << 20, prot=mmap.PROT_READ)
assert os.pread(r, 4096, 8192) == bytes(4096) and mm[8192:8196] == bytes(4)  # now cached
w = os.open(m, os.O_WRONLY)
for i, v in enumerate((0x11, 0x22, 0x33)):
    os.pwrite(w, bytes([v]) * 4096, 8192 + 4096 * i)        # gathered, too
    assert os.pread(r, 4096, 8192 + 4096 * i) == bytes([v]) * 4096, "open reader, block %d" % i
    assert mm[8192 + 4096 * i] == v, "mmap reader, block %d" % i
os.pwrite(w, b'\x44' * (1 << 20), 4 << 20)                    # one large write
os.close(w)
r2 = os.open(m, os.O_RDONLY)
assert os.pread(r2, 1 << 20, 4 << 20) == b'\x44' * (1 << 20), "a later open"
assert os.pread(r, 4096, (4 << 20) + 4096) == b'\x44' * 4096, "the open reader, large write"
PY
unmount_img "$T/m"
python3 - "$T/d.raw" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
assert b[8192:8192 + 3 * 4096] == b'\x11' * 4096 + b'\x22' * 4096 + b'\x33' * 4096
assert b[4 << 20:5 << 20] == b'\x44' * (1 << 20)
PY
note "write-only opens: open readers, mmap and later opens see every write"

# -- 7. an O_DSYNC write into gathered bytes lands after them ----------------
truncate -s 8M "$T/e.raw"
mount_img -F raw "$T/e.raw" "$T/m"
python3 - "$T/m" <<'PY'
import os, sys
a = os.open(sys.argv[1], os.O_RDWR)
for i in range(16):                                 # gathered
    os.pwrite(a, b'\x01' * 4096, (1 << 20) + i * 4096)
b = os.open(sys.argv[1], os.O_RDWR | os.O_DSYNC)   # straight through
os.pwrite(b, b'\x02' * 4096, (1 << 20) + 8192)
os.close(b)
os.close(a)
PY
unmount_img "$T/m"
python3 - "$T/e.raw" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
assert b[(1 << 20) + 8192:(1 << 20) + 12288] == b'\x02' * 4096, "the O_DSYNC write was overwritten"
assert b[(1 << 20):(1 << 20) + 8192] == b'\x01' * 8192
PY
note "an O_DSYNC write over gathered bytes stays"
echo "write combining: ok"
