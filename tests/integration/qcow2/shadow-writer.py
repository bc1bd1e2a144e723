#!/usr/bin/env python3
"""Seeded random writer: writes, punched holes and zeroed ranges to a
mounted raw file and mirrors each into a plain shadow file. Several threads
work at once, each in its own stripes, so requests reach the driver in
parallel. Usage: shadow-writer.py MOUNTED SHADOW SEED OPS [THREADS [FSYNC_EVERY]]"""
import ctypes, os, random, sys, threading

PUNCH = 0x02 | 0x01          # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
ZERO = 0x10                  # FALLOC_FL_ZERO_RANGE
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]

mnt, shadow, seed, ops = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
nthreads = int(sys.argv[5]) if len(sys.argv) > 5 else 4
fsync_every = int(sys.argv[6]) if len(sys.argv) > 6 else 97
fd = os.open(mnt, os.O_RDWR)
sfd = os.open(shadow, os.O_RDWR)
size = os.fstat(fd).st_size
stripe = 1 << 20
errors = []

def worker(t):
    r = random.Random(seed * 100 + t)
    for i in range(ops):
        s = r.randrange(size // stripe)
        s -= s % nthreads
        s += t
        if s * stripe >= size:
            continue
        base = s * stripe
        ln = r.choice([512, 4096, 65536, r.randint(1, 200000)])
        ln = min(ln, stripe)
        off = base + r.randrange(stripe - ln + 1)
        if off + ln > size:
            continue
        k = r.random()
        if k < 0.08:
            mode = PUNCH if k < 0.04 else ZERO
            if libc.fallocate(fd, mode, off, ln) != 0:
                errors.append(f'fallocate {mode:#x} {off}+{ln}: errno {ctypes.get_errno()}')
                return
            os.pwrite(sfd, bytes(ln), off)
        else:
            data = r.randbytes(ln) if k < 0.8 else bytes([i & 255]) * ln
            os.pwrite(fd, data, off)
            os.pwrite(sfd, data, off)
        if fsync_every and i % fsync_every == fsync_every - 1:
            os.fsync(fd)

def guarded(t):
    try:
        worker(t)
    except Exception as e:          # any failure must fail the test
        errors.append(f'thread {t}: {e!r}')

ts = [threading.Thread(target=guarded, args=(t,)) for t in range(nthreads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
os.fsync(fd)
os.close(fd)
os.close(sfd)
if errors:
    sys.exit('; '.join(errors))
