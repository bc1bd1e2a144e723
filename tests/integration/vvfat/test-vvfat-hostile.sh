#!/bin/bash
# vvfat rw against a hostile guest: directory entries and FATs written
# straight into the mounted disk (names with '/' or control characters,
# two files sharing a cluster, a chain leaving the volume, a size beyond
# the chain, a reformatted volume). Each commit must be refused with a
# message, leave DIR as it was, write nothing beside DIR, and the daemon
# must stay up.
. "$(dirname "$0")/../lib.sh"
export MTOOLS_SKIP_CHECK=1

mkdir -p "$T/top/d/sub"
echo "first file" >"$T/top/d/one.txt"
head -c 20000 /dev/urandom >"$T/top/d/sub/two.bin"
snap() { (cd "$T/top" && find . -printf '%p %s %T@\n' | sort | sha256sum); }
before=$(snap)

start() {
    touch "$T/m.raw"
    _MOUNTS+=("$T/m.raw")
    "$IMGFUSE" -f "fat:rw:$T/top/d" "$T/m.raw" 2>"$T/log" &
    DAEMON=$!
    for _ in $(seq 1 100); do
        is_mounted "$T/m.raw" && return 0
        sleep 0.05
    done
    fail "not mounted: $(cat "$T/log")"
}

# attack NAME PATTERN PYTHON: mount rw, run PYTHON with the disk open as f
# (r+b) and the volume's layout in v, close it (a flush, so a commit), then
# expect PATTERN in the log, DIR unchanged and the daemon alive.
attack() {
    local name=$1 pattern=$2 code=$3
    start
    python3 - "$T/m.raw" <<PY
import struct, sys
f = open(sys.argv[1], "r+b")
vol = 63 * 512
f.seek(vol); b = f.read(512)
spc, res, nfat, rootent, fatsz = b[13], struct.unpack_from("<H", b, 14)[0], b[16], \
    struct.unpack_from("<H", b, 17)[0], struct.unpack_from("<H", b, 22)[0]
fat = vol + res * 512
root = fat + nfat * fatsz * 512
data = root + rootent * 32
def fat_set(c, v):
    for k in range(nfat):
        f.seek(fat + k * fatsz * 512 + 2 * c); f.write(struct.pack("<H", v))
def entry(i, name11, attr, cluster, size):
    f.seek(root + 32 * i)
    f.write(name11 + bytes([attr]) + bytes(14) + struct.pack("<HI", cluster, size))
def free_slot():
    f.seek(root)
    r = f.read(rootent * 32)
    return next(i for i in range(rootent) if r[32 * i] in (0, 0xe5))
$code
try:
    f.close()       # the flush: a refused commit fails it with EIO
except OSError:
    pass
PY
    sleep 0.3
    kill -0 $DAEMON 2>/dev/null || fail "$name: the daemon died: $(cat "$T/log")"
    grep -q -- "$pattern" "$T/log" || fail "$name: no '$pattern' in: $(cat "$T/log")"
    expect_eq "$(snap)" "$before" "$name: DIR and its parent untouched"
    fusermount3 -u "$T/m.raw"
    wait $DAEMON || true
    expect_eq "$(snap)" "$before" "$name: DIR untouched after unmount"
    note "$name: $(grep -m1 -- "$pattern" "$T/log" | cut -c1-150)"
}

attack "a slash in a name" "cannot be carried back" '
i = free_slot()
name = "x/../../evil"
u = name.encode("utf-16-le") + b"\0\0"
u += b"\xff" * (26 - len(u))
sn = b"EVIL    TXT"
s = 0
for ch in sn:
    s = (((s & 1) << 7) + (s >> 1) + ch) & 0xff
lfn = bytes([0x41]) + u[0:10] + bytes([0x0f, 0, s]) + u[10:22] + b"\0\0" + u[22:26]
f.seek(root + 32 * i); f.write(lfn)
entry(i + 1, sn, 0x20, 0, 0)
'
attack "a control character in a name" "cannot be carried back" '
entry(free_slot(), b"A\x01B     TXT", 0x20, 0, 0)
'
attack "two files on one cluster" "used twice" '
f.seek(root); r = f.read(rootent * 32)
one = next(i for i in range(rootent) if r[32 * i:32 * i + 11] == b"ONE     TXT")
c = struct.unpack_from("<H", r, 32 * one + 26)[0]
entry(free_slot(), b"TWIN    TXT", 0x20, c, 11)
'
attack "a chain leaving the volume" "leaves the volume" '
f.seek(root); r = f.read(rootent * 32)
one = next(i for i in range(rootent) if r[32 * i:32 * i + 11] == b"ONE     TXT")
c = struct.unpack_from("<H", r, 32 * one + 26)[0]
fat_set(c, 0xfff0)
'
attack "a size beyond the chain" "holds fewer" '
f.seek(root); r = f.read(rootent * 32)
one = next(i for i in range(rootent) if r[32 * i:32 * i + 11] == b"ONE     TXT")
f.seek(root + 32 * one + 28); f.write(struct.pack("<I", 10 << 20))
'
attack "a reformatted volume" "reformatted" '
f.seek(vol + 13); f.write(bytes([64]))
'
