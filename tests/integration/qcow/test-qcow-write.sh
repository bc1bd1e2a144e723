#!/bin/bash
# Writes through the mount: random writes mirrored into a raw shadow leave
# qcow images qemu-img compare finds equal to the shadow: a fresh image, a
# compressed one (writes decompress clusters), one over a backing file
# (partial writes copy the rest of the cluster from it); imgfuse create -F
# qcow matches qemu-img create's layout, with and without backing_file, and
# a file copied into a new mount reads back in qemu; punched holes read as
# zeroes and, where no backing file is under them, become holes qemu-img map
# sees.
. "$(dirname "$0")/common.sh"

# punch TARGET SHADOW: the same holes, punched in TARGET and zeroed in SHADOW
punch() {
    python3 - "$@" <<'PY'
import ctypes, os, random, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
a = os.open(sys.argv[1], os.O_WRONLY)
b = os.open(sys.argv[2], os.O_WRONLY)
size = os.fstat(b).st_size
rnd = random.Random(9)
for i in range(6):
    off = rnd.randrange(size // 2)
    ln = min(rnd.randint(1, 1 << 20), size - off)
    if libc.fallocate(a, 3, off, ln) != 0:  # PUNCH_HOLE | KEEP_SIZE
        sys.exit("fallocate: " + os.strerror(ctypes.get_errno()))
    os.pwrite(b, bytes(ln), off)
os.fsync(a)
PY
}

# written NAME: mount NAME.qcow, mirror random writes into NAME.shadow, and
# have qemu compare the two
written() {
    local img=$T/$1.qcow
    qemu-img convert -f qcow -O raw "$img" "$T/$1.shadow"
    mount_img "$img" "$T/mnt-$1"
    mirror_writes "$T/mnt-$1" "$T/$1.shadow" "${2:-3}" 40
    punch "$T/mnt-$1" "$T/$1.shadow"
    unmount_img "$T/mnt-$1"
    qemu-img compare -q -f qcow -F raw "$img" "$T/$1.shadow" ||
        fail "$1: qemu-img compare finds the image differs from the shadow"
    note "$1: ok"
}

python3 - "$T/pattern.raw" <<'PY'
import random, sys
r = random.Random(5)
b = bytearray(6 * 1024 * 1024)
for i in range(150):
    o = r.randrange(len(b) - 20000)
    n = r.randrange(1, 20000)
    b[o:o + n] = bytes([r.randrange(1, 4)]) * n if i % 2 else r.randbytes(n)
open(sys.argv[1], 'wb').write(b)
PY
qemu-img create -q -f qcow "$T/fresh.qcow" 9M
written fresh
mount_img -r "$T/fresh.qcow" "$T/ro-fresh"
expect_eq "$(seek_map "$T/ro-fresh")" "$(qemu_data_map -f qcow "$T/fresh.qcow")" \
    "fresh: data runs after writes and punched holes"
unmount_img "$T/ro-fresh"
qemu_compress "$T/pattern.raw" "$T/comp.qcow"
written comp 4
# over a backing file: 512-byte clusters, and some allocated in the top
head -c 6M /dev/urandom >"$T/base.raw"
qemu-img create -q -f qcow -b base.raw -F raw "$T/over.qcow"
qemu-io -f qcow -c "write -P 0x5c 1M 1536k" "$T/over.qcow" >/dev/null
written over 5
# compressed clusters over a backing file
(cd "$T" && qemu_compress -B base.raw -F raw "$T/pattern.raw" compover.qcow)
written compover 6

# imgfuse create against qemu-img create: same header (but the mtime) and size
head -c 1500000 /dev/urandom >"$T/src.raw"
truncate -s 5M "$T/src.raw"
head -c 300000 /dev/urandom >>"$T/src.raw"
size=$(stat -c %s "$T/src.raw")
for kind in plain backing; do
    opts=() qopts=()
    if [ $kind = backing ]; then
        opts=(-o backing_file=base.raw,backing_fmt=raw)
        qopts=(-b base.raw -F raw)
    fi
    rm -f "$T/ours.qcow" "$T/theirs.qcow"
    (cd "$T" && "$IMGFUSE" create -F qcow "${opts[@]}" ours.qcow 7M >/dev/null)
    (cd "$T" && qemu-img create -q -f qcow "${qopts[@]}" theirs.qcow 7M)
    expect_eq "$(stat -c %s "$T/ours.qcow")" "$(stat -c %s "$T/theirs.qcow")" \
        "$kind: file size"
    python3 - "$T/ours.qcow" "$T/theirs.qcow" <<'PY' || fail "$kind: header differs from qemu's"
import sys
a, b = (open(f, 'rb').read() for f in sys.argv[1:3])
sys.exit(0 if a[:20] == b[:20] and a[24:] == b[24:] else 1)
PY
    qemu-img info -f qcow "$T/ours.qcow" >"$T/info" || fail "$kind: qemu-img info"
    grep -q "^virtual size.*(7340032 bytes)" "$T/info" || fail "$kind: virtual size"
    note "create $kind: ok"
done
# create, mount, write; the backing one takes its size from the backing file
rm -f "$T/new.qcow"
mount_img --create "$size" -F qcow "$T/new.qcow" "$T/new.raw"
cp "$T/src.raw" "$T/new.raw"
unmount_img "$T/new.raw"
qemu-img compare -q -f qcow -F raw "$T/new.qcow" "$T/src.raw" ||
    fail "cp into a new mount differs"
note "create then cp: ok"
(cd "$T" && "$IMGFUSE" create -F qcow -o backing_file=base.raw newtop.qcow 0 >/dev/null)
qemu-img info -f qcow "$T/newtop.qcow" | grep -q "^virtual size.*(6291456 bytes)" ||
    fail "create over base.raw: virtual size"
written newtop 7
