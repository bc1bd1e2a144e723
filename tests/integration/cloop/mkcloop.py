#!/usr/bin/python3
"""Write a cloop image of a raw file, following compressed_loop.h (cloop
4.x): a 128-byte "#!/bin/sh" preamble with the version at byte 11, block
size and block count (big-endian 32-bit), and n + 1 big-endian 64-bit
offsets; in V4 the top 4 bits of an entry give the block's compression
(0 zlib, 1 stored, 2 xz, 3 lz4, 4 LZO1X). The header and index come first, or with
--footer last (index, then header). Debian 12's create_compressed_fs only
writes V2 zlib images, so the V4 layouts of the tests come from here.

usage: mkcloop.py SRC OUT [--v2] [--footer] [-B SIZE] [--codecs a,b,...]
  --codecs cycles through the list block by block (default zlib).
"""
import argparse
import lzma
import struct
import zlib

CODECS = {'zlib': 0, 'none': 1, 'xz': 2, 'lz4': 3, 'lzo': 4}


def compress(codec, data):
    if codec == 'zlib':
        return zlib.compress(data, 9)
    if codec == 'none':
        return data
    if codec == 'xz':
        return lzma.compress(data, format=lzma.FORMAT_XZ,
                             check=lzma.CHECK_CRC32)
    if codec == 'lzo':
        import lzo
        return lzo.compress(data, 9, False)
    import lz4.block
    return lz4.block.compress(data, store_size=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('src')
    ap.add_argument('out')
    ap.add_argument('--v2', action='store_true')
    ap.add_argument('--footer', action='store_true')
    ap.add_argument('-B', type=int, default=65536)
    ap.add_argument('--codecs', default='zlib')
    a = ap.parse_args()
    codecs = a.codecs.split(',')
    raw = open(a.src, 'rb').read()
    bs = a.B
    n = (len(raw) + bs - 1) // bs
    version = 2 if a.v2 else 4
    pre = ('#!/bin/sh\n#V%d.0 Format\nmodprobe cloop file=$0 && mount -r '
           '-t iso9660 /dev/cloop $1\nexit $?\n' % version).encode()
    head = pre.ljust(128, b'\0') + struct.pack('>II', bs, n)
    index_len = 8 * (n + 1)
    pos = 0 if a.footer else len(head) + index_len
    ptrs, blocks = [], []
    for i in range(n):
        block = raw[i * bs:(i + 1) * bs].ljust(bs, b'\0')
        codec = codecs[i % len(codecs)]
        z = compress(codec, block)
        flag = 0 if version == 2 else CODECS[codec] << 60
        ptrs.append(pos | flag)
        blocks.append(z)
        pos += len(z)
    ptrs.append(pos)
    index = b''.join(struct.pack('>Q', p) for p in ptrs)
    with open(a.out, 'wb') as f:
        if not a.footer:
            f.write(head + index)
        for z in blocks:
            f.write(z)
        if a.footer:
            f.write(index + head)


main()
