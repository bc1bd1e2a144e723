#!/usr/bin/env python3
"""Compare the data extents a mounted raw file reports through
lseek(SEEK_DATA/SEEK_HOLE) with those of `qemu-img map --output=json`.
Usage: map-compare.py MOUNTED_RAW IMAGE [qemu-img map args...]"""
import json, os, subprocess, sys

def merge(ext):
    out = []
    for a, b in ext:
        if out and out[-1][1] == a:
            out[-1][1] = b
        elif b > a:
            out.append([a, b])
    return out

def ours(path):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    ext, off = [], 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        ext.append((d, h))
        off = h
    os.close(fd)
    return merge(ext)

def theirs(img, args):
    out = subprocess.run(['qemu-img', 'map', '-U', '--output=json'] + args + [img],
                         check=True, capture_output=True, text=True).stdout
    return merge([(e['start'], e['start'] + e['length'])
                  for e in json.loads(out) if e['data']])

a, b = ours(sys.argv[1]), theirs(sys.argv[2], sys.argv[3:])
if a != b:
    print('seek extents:', a[:20], '\nqemu-img map:', b[:20])
    sys.exit(1)
print(f'{len(a)} data extents agree')
