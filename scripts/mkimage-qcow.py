#!/usr/bin/env python3
"""Make a qcow (version 1) image from a raw file, with any cluster and L2
table size, for the cluster geometries qemu-img never makes itself.

usage: mkimage-qcow.py RAW OUT.qcow CLUSTER_BITS L2_BITS [SEED]

Clusters of RAW that are all zeroes stay unallocated. Of the others, about
a third are stored zlib-compressed (raw deflate, 4 KiB window, as QEMU
writes them; packed back to back, unaligned) and the rest as plain clusters;
L2 tables are allocated as they are first needed, in between. With SEED the
clusters are written in a shuffled order, so the file order differs from the
guest order. Written from the layout (header, L1 table, L2 tables, cluster
offsets with bit 63 and the compressed size above bit 63 - cluster_bits);
qemu-img is the oracle that reads the result.
"""
import random
import struct
import sys
import zlib


def main():
    raw_path, out_path = sys.argv[1], sys.argv[2]
    cb, l2b = int(sys.argv[3]), int(sys.argv[4])
    rnd = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    data = open(raw_path, 'rb').read()
    cs, l2n = 1 << cb, 1 << l2b
    size = len(data)
    span = cs * l2n
    l1n = (size + span - 1) // span
    l1_off = 48
    out = bytearray(l1_off + l1n * 8)
    end = len(out)
    l1 = [0] * l1n
    l2 = {}

    def align(v, a):
        return (v + a - 1) // a * a

    order = list(range((size + cs - 1) // cs))
    if len(sys.argv) > 5:
        rnd.shuffle(order)
    for c in order:
        chunk = data[c * cs:(c + 1) * cs].ljust(cs, b'\0')
        if chunk == bytes(cs):
            continue
        i1, i2 = c // l2n, c % l2n
        if l1[i1] == 0:
            end = align(end, cs)
            l1[i1] = end
            l2[i1] = [0] * l2n
            end += l2n * 8
        z = zlib.compressobj(9, zlib.DEFLATED, -12)
        comp = z.compress(chunk) + z.flush()
        if rnd.random() < 0.35 and len(comp) < cs:
            entry = 1 << 63 | len(comp) << (63 - cb) | end
            blob = comp
        else:
            end = align(end, cs)
            entry = end
            blob = chunk
        out[len(out):] = bytes(end - len(out)) if end > len(out) else b''
        out[end:end + len(blob)] = blob
        end += len(blob)
        l2[i1][i2] = entry
    out[len(out):] = bytes(end - len(out)) if end > len(out) else b''
    for i1, table in l2.items():
        out[l1[i1]:l1[i1] + l2n * 8] = struct.pack('>%dQ' % l2n, *table)
    struct.pack_into('>%dQ' % l1n, out, l1_off, *l1)
    struct.pack_into('>4sIQIIQBBxxIQ', out, 0, b'QFI\xfb', 1, 0, 0, 0, size,
                     cb, l2b, 0, l1_off)
    open(out_path, 'wb').write(out)


if __name__ == '__main__':
    main()
