#!/bin/bash
# Hostile cloop files fail with a clear message, never a crash or a hang:
# a huge block count, offsets going backwards or beyond the file, an
# unknown V4 codec, a bad block size, a truncated file, no header at all;
# a block that expands past the block size opens but reads as EIO while
# the blocks around it still read. Run it with IMGFUSE=build-asan/imgfuse.
. "$(dirname "$0")/../lib.sh"
# the system python (it has python3-lz4), not a slower pyenv shim
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

gzip -dc "$DATA/cloop/gen-cloop-64k.cloop.gz" >"$T/good.cloop"

# expect_open_error FILE PATTERN
expect_open_error() {
    local img=$1 pattern=$2 rc=0 mnt=$T/mnt-err.$RANDOM
    touch "$mnt"
    mount_img -F cloop -r "$img" "$mnt" 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] || fail "$img mounted; expected: $pattern"
    [ $rc -lt 128 ] || fail "$img: imgfuse died with signal $((rc - 128))"
    grep -q -- "$pattern" "$T/err" ||
        fail "$img: message '$(cat "$T/err")' lacks '$pattern'"
    note "$(basename "$img"): $(head -1 "$T/err")"
}

# patch OUT PYTHON-STATEMENTS: a copy of good.cloop as bytearray d, changed
patch() {
    local out=$1
    shift
    "$PY" - "$T/good.cloop" "$out" "$1" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
def be64(i, v): d[136 + 8 * i:144 + 8 * i] = struct.pack('>Q', v)
def get64(i): return struct.unpack('>Q', d[136 + 8 * i:144 + 8 * i])[0]
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
PY
}

patch "$T/huge.cloop" "d[132:136] = b'\xff\xff\xff\xff'"
expect_open_error "$T/huge.cloop" "more than the 536870912 bytes allowed"
patch "$T/many.cloop" "d[132:136] = b'\x00\xff\xff\xff'"
expect_open_error "$T/many.cloop" "too small for the index of 16777215 blocks"
patch "$T/back.cloop" "be64(5, get64(3))"
expect_open_error "$T/back.cloop" "goes backwards at block 5"
patch "$T/beyond.cloop" "be64(128, len(d) + 4096)"
expect_open_error "$T/beyond.cloop" "beyond the end of the file"
patch "$T/far.cloop" "be64(7, 1 << 50); be64(8, 1 << 50)"
expect_open_error "$T/far.cloop" "more than a 65536-byte block can need"
patch "$T/bs.cloop" "d[128:132] = struct.pack('>I', 1000)"
expect_open_error "$T/bs.cloop" "not a multiple of 512"
patch "$T/bs0.cloop" "d[128:132] = bytes(4)"
expect_open_error "$T/bs0.cloop" "not a multiple of 512"
head -c 30000 "$T/good.cloop" >"$T/cut.cloop"
expect_open_error "$T/cut.cloop" "the image is truncated"
head -c 600 "$T/good.cloop" >"$T/cut-index.cloop"
expect_open_error "$T/cut-index.cloop" "too small for the index"
head -c 100 "$T/good.cloop" >"$T/tiny.cloop"
expect_open_error "$T/tiny.cloop" "too short for a cloop header"
head -c 65536 /dev/zero >"$T/zero.cloop"
expect_open_error "$T/zero.cloop" "no cloop V2.0 or V4.0 header"
patch "$T/v4flag.cloop" "d[11:15] = b'V4.0'; be64(2, get64(2) | 9 << 60)"
expect_open_error "$T/v4flag.cloop" "unknown compression 9"

# block 3 holds a zlib stream of 2 blocks of data; its neighbours are fine
"$PY" - "$T/big.cloop" <<'PY'
import struct, sys, zlib
bs = 65536
blocks = [zlib.compress(bytes([i]) * bs) for i in range(6)]
blocks[3] = zlib.compress(b'\x33' * (2 * bs))
pre = b'#!/bin/sh\n#V2.0 Format\n'.ljust(128, b'\0')
pos = 136 + 8 * 7
ptrs = []
for z in blocks:
    ptrs.append(pos)
    pos += len(z)
ptrs.append(pos)
open(sys.argv[1], 'wb').write(pre + struct.pack('>II', bs, 6) +
    b''.join(struct.pack('>Q', p) for p in ptrs) + b''.join(blocks))
PY
mnt=$T/mnt-big
touch "$mnt"
# in the foreground, so the message reaches our stderr file
_MOUNTS+=("$mnt")
"$IMGFUSE" -f -r "$T/big.cloop" "$mnt" 2>"$T/log" &
pid=$!
for _ in $(seq 1 100); do is_mounted "$mnt" && break; sleep 0.05; done
is_mounted "$mnt" || fail "big.cloop did not mount: $(cat "$T/log")"
"$PY" - "$mnt" <<'PY' || fail "block expanding past its size"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
bs = 65536
for i in (0, 2, 4, 5):
    if os.pread(fd, bs, i * bs) != bytes([i]) * bs:
        sys.exit('block %d wrong' % i)
try:
    os.pread(fd, 100, 3 * bs + 10)
    sys.exit('block 3 read without error')
except OSError as e:
    if e.errno != errno.EIO:
        sys.exit('block 3: %s, not EIO' % e)
PY
fusermount3 -u "$mnt"
wait $pid || fail "imgfuse -f exited with $?"
grep -q "block 3 .* expands beyond the block size" "$T/log" ||
    fail "no message for block 3: $(cat "$T/log")"
note "oversized block: $(grep -m1 'block 3' "$T/log")"
