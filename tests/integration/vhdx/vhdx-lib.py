#!/usr/bin/env python3
"""Helpers for the vhdx integration tests.

  randwrite MOUNT SHADOW SEED COUNT   random writes (and zero writes) into
                                      MOUNT, mirrored into SHADOW
  holes MOUNT ORACLE                  every SEEK_HOLE range of MOUNT reads
                                      zero in ORACLE; prints the hole count
  extents MOUNT                       the SEEK_DATA extents, "start+len" in MiB
  vhdi IMAGE OUT [PARENT...]          the raw content of IMAGE (over its
                                      chain of PARENTs) as libvhdi reads it:
                                      a second oracle where qemu has none
                                      (differencing, 4 KiB sectors); needs
                                      Debian's python3-libvhdi (/usr/bin/python3)
"""
import os
import random
import sys


def randwrite(mount, shadow, seed, count):
    r = random.Random(int(seed))
    size = os.path.getsize(mount)
    fm = os.open(mount, os.O_RDWR)
    fs = os.open(shadow, os.O_RDWR)
    for _ in range(int(count)):
        ln = r.choice([512, 4096, 65536, 1 << 20, 3 << 20 | 512, 1536])
        off = r.randrange(0, size // 512) * 512
        ln = min(ln, size - off)
        if r.random() < 0.15:
            data = bytes(ln)
        else:
            data = r.randbytes(ln)
        os.pwrite(fm, data, off)
        os.pwrite(fs, data, off)
    os.fsync(fm)
    os.close(fm)
    os.close(fs)


def holes(mount, oracle):
    fd = os.open(mount, os.O_RDONLY)
    fo = open(oracle, 'rb')
    size = os.fstat(fd).st_size
    off, n = 0, 0
    while off < size:
        try:
            h = os.lseek(fd, off, os.SEEK_HOLE)
        except OSError:
            break
        if h >= size:
            break
        try:
            d = os.lseek(fd, h, os.SEEK_DATA)
        except OSError:
            d = size
        fo.seek(h)
        left = d - h
        while left:
            chunk = fo.read(min(left, 1 << 24))
            if chunk.count(0) != len(chunk):
                sys.exit(f"hole at {h}..{d} is not zero in the oracle")
            left -= len(chunk)
        n += 1
        off = d
    print(n)


def extents(mount):
    fd = os.open(mount, os.O_RDONLY)
    size = os.fstat(fd).st_size
    off, out = 0, []
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append(f"{d >> 20}+{(h - d) >> 20}")
        off = h
    print(' '.join(out))


def vhdi(image, out, *parents):
    import pyvhdi
    chain = []
    for path in (image,) + parents:
        f = pyvhdi.file()
        f.open(path)
        chain.append(f)         # keep every parent object alive
    for child, parent in zip(chain, chain[1:]):
        child.set_parent(parent)
    f = chain[0]
    size, off = f.get_media_size(), 0
    with open(out, 'wb') as o:
        while off < size:
            n = min(1 << 20, size - off)
            o.write(f.read_buffer_at_offset(n, off))
            off += n


if __name__ == '__main__':
    {'randwrite': randwrite, 'holes': holes, 'extents': extents,
     'vhdi': vhdi}[sys.argv[1]](*sys.argv[2:])
