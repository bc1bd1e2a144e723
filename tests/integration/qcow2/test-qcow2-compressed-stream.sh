#!/bin/bash
# zlib-compressed qcow2 (qemu-img convert -c) read through the decompression
# read-ahead: sequential reads (page cache and O_DIRECT), random reads from
# several threads mixed with streams, all byte-exact against
# `qemu-img convert -O raw`; and writes into compressed clusters the helper
# has already inflated ahead of a reader (plain, and compress=on, which can
# put new compressed data where freed compressed data was) read back new,
# never stale, with qemu-img compare against a shadow as the oracle.
. "$(dirname "$0")/../lib.sh"

# text-like data (compresses about 3x) with a zero hole and a random stretch
python3 - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(7)
words = [r.randbytes(r.randint(2, 9)) for _ in range(3000)]
with open(sys.argv[1], 'wb') as f:
    for i in range(24 * 16):            # 24 MiB in 64 KiB pieces
        if 100 <= i < 110:
            f.write(bytes(65536))
        elif 200 <= i < 204:
            f.write(r.randbytes(65536))
        else:
            f.write(b''.join(r.choice(words) for _ in range(13000))[:65536])
PY
qemu-img convert -q -c -f raw -O qcow2 -o compression_type=zlib \
    "$T/src.raw" "$T/c.qcow2"
qemu-img convert -q -f qcow2 -O raw "$T/c.qcow2" "$T/oracle.raw"
want=$(sha "$T/oracle.raw")
expect_eq "$want" "$(sha "$T/src.raw")" "qemu-img's own round trip"

touch "$T/m"
mount_img -r "$T/c.qcow2" "$T/m"
for round in 1 2 3; do
    expect_eq "$(dd if="$T/m" bs=1M status=none | sha256sum | cut -d' ' -f1)" \
        "$want" "sequential read $round (page cache)"
    expect_eq "$(dd if="$T/m" bs=1M iflag=direct status=none | sha256sum |
                 cut -d' ' -f1)" "$want" "sequential read $round (O_DIRECT)"
    expect_eq "$(dd if="$T/m" bs=192k iflag=direct status=none | sha256sum |
                 cut -d' ' -f1)" "$want" "unaligned-size reads $round"
done
note "sequential reads: ok"

# 6 threads: 3 random readers (odd sizes and offsets) and 3 streams from
# random starts, O_DIRECT so every read reaches the daemon
python3 - "$T/m/" "$T/oracle.raw" <<'PY' || fail "random and stream reads differ"
import mmap, os, random, sys, threading
mnt, oracle = sys.argv[1].rstrip('/'), sys.argv[2]
want = open(oracle, 'rb').read()
bad = []
def reader(seed, stream):
    r = random.Random(seed)
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 1 << 20)
    try:
        off = r.randrange(len(want) // 4096) * 4096
        for _ in range(150):
            if stream:
                n = r.choice([4096, 65536, 131072, 1 << 20])
                if off + n > len(want):
                    off = r.randrange(len(want) // 4096) * 4096
            else:
                n = r.randrange(1, 64) * 4096
                off = r.randrange((len(want) - n) // 4096) * 4096
            got = os.preadv(fd, [memoryview(buf)[:n]], off)
            if buf[:got] != want[off:off + got] or got != min(n, len(want) - off):
                bad.append((seed, off, n))
                return
            off += n
    finally:
        os.close(fd)
ts = [threading.Thread(target=reader, args=(s, s % 2 == 0)) for s in range(6)]
for t in ts: t.start()
for t in ts: t.join()
if bad:
    print('mismatch (seed, offset, size):', bad, file=sys.stderr)
    sys.exit(1)
PY
unmount_img "$T/m"
note "random reads from 6 threads: ok"

# Write-then-read: start a stream so the helper inflates ahead, write into
# a compressed cluster inside its window, read it back. Plain writes make
# the cluster a normal one; compress=on writes new compressed data, which
# may land on host bytes freed by an earlier rewrite.
for mode in plain compress; do
    cp "$T/c.qcow2" "$T/w.qcow2"
    cp "$T/oracle.raw" "$T/shadow.raw"
    opts=()
    [ $mode = compress ] && opts=(-o compress=on)
    mount_img "${opts[@]}" "$T/w.qcow2" "$T/m"
    python3 - "$T/m" "$T/shadow.raw" <<'PY' || fail "$mode: a read after a write returned old data"
import mmap, os, random, sys
mnt, shadow = sys.argv[1], sys.argv[2]
fd = os.open(mnt, os.O_RDWR | os.O_DIRECT)
sh = os.open(shadow, os.O_RDWR)
buf = mmap.mmap(-1, 1 << 20)
r = random.Random(3)
C = 65536
for i in range(40):
    start = r.randrange(0, 17) * (1 << 20)
    for k in range(4):                  # a stream: the helper runs ahead
        os.preadv(fd, [buf], start + k * (1 << 20))
    # a whole cluster (compressible, so compress=on stores it compressed)
    # or a part of one, in the window just inflated
    tgt = start + 4 * (1 << 20) + r.randrange(0, 48) * C
    n = C if i % 2 == 0 else 4096
    data = bytes([i + 1]) * 64 + r.randbytes(64)
    data = (data * (n // len(data) + 1))[:n]
    buf[:n] = data
    os.pwritev(fd, [memoryview(buf)[:n]], tgt)
    os.pwrite(sh, data, tgt)
    for k in range(4, 6):               # read through the written cluster
        off = start + k * (1 << 20)
        got = os.preadv(fd, [buf], off)
        if buf[:got] != os.pread(sh, got, off):
            print(f'stale data near {tgt} (round {i})', file=sys.stderr)
            sys.exit(1)
os.close(fd)
os.close(sh)
PY
    unmount_img "$T/m"
    oracle_agrees "$T/w.qcow2" qcow2 "$T/shadow.raw" "$mode writes in the window"
    note "write-then-read ($mode): ok"
done
