#!/usr/bin/env python3
"""Bochs growing redologs for the tests, written from the header layout
(Bochs iodev/hdimage/hdimage.h): a 512-byte header, a catalog of 32-bit
little-endian slot numbers (0xffffffff: free), then one slot per allocated
extent: its sector bitmap (bit k of byte k/8 set: sector k written), padded
to 512 bytes, then the extent. Unwritten sectors read as zeroes.

  bochs.py make OUT RAW VERSION EXTENT DISK SEED
      a random image: some extents free, the rest in shuffled slots with
      random bitmaps and garbage in unwritten sectors; RAW gets the guest
      content it should read as
  bochs.py map IMAGE
      the data runs ("start end" lines, merged) the bitmaps describe
  bochs.py patch IN OUT PYTHON
      a copy of IN with PYTHON run on d (bytearray), le32(o, v), le64(o, v)
"""
import random
import struct
import sys

FREE = 0xffffffff


def header(version, catalog, bitmap, extent, disk, subtype=b'Growing'):
    h = bytearray(512)
    h[0:22] = b'Bochs Virtual HD Image'
    h[32:39] = b'Redolog'
    h[48:48 + len(subtype)] = subtype
    struct.pack_into('<IIIII', h, 64, version << 16, 512, catalog, bitmap, extent)
    if version == 1:
        struct.pack_into('<Q', h, 84, disk)
    else:
        struct.pack_into('<IQ', h, 84, 0x5eed, disk)
    return h


def make(out, raw, version, extent, disk, seed):
    rnd = random.Random(seed)
    sectors = extent // 512
    bitmap = (sectors + 7) // 8
    bm_pad = (bitmap + 511) // 512 * 512
    extents = (disk + extent - 1) // extent
    catalog = extents + rnd.randint(0, 3)
    used = [i for i in range(extents) if rnd.random() < 0.6]
    order = used[:]
    rnd.shuffle(order)
    cat = [FREE] * catalog
    guest = bytearray(extents * extent)
    slots = []
    for slot, i in enumerate(order):
        cat[i] = slot
        kind = rnd.random()
        bits = [kind < 0.3 or (kind < 0.8 and rnd.random() < 0.5)
                for _ in range(sectors)]
        bm = bytearray(bm_pad)
        data = bytearray(b'\xee' * extent)
        for k, b in enumerate(bits):
            if not b:
                continue
            bm[k // 8] |= 1 << (k % 8)
            sec = bytes(rnd.getrandbits(8) for _ in range(16)) * 32
            data[k * 512:(k + 1) * 512] = sec
            guest[i * extent + k * 512:i * extent + (k + 1) * 512] = sec
        slots.append(bm + data)
    with open(out, 'wb') as f:
        f.write(header(version, catalog, bitmap, extent, disk))
        f.write(struct.pack('<%dI' % catalog, *cat))
        for s in slots:
            f.write(s)
    with open(raw, 'wb') as f:
        f.write(guest[:disk // 512 * 512])


def data_map(path):
    d = open(path, 'rb').read()
    version = struct.unpack_from('<I', d, 64)[0] >> 16
    hsize, catalog, bitmap, extent = struct.unpack_from('<IIII', d, 68)
    disk = struct.unpack_from('<Q', d, 84 if version == 1 else 88)[0]
    size = disk // 512 * 512
    cat = struct.unpack_from('<%dI' % catalog, d, hsize)
    data_off = hsize + 4 * catalog
    slot = (bitmap + 511) // 512 * 512 + extent
    runs = []
    for i in range((size + extent - 1) // extent):
        if cat[i] == FREE:
            continue
        bm = data_off + cat[i] * slot
        for k in range(extent // 512):
            off = i * extent + k * 512
            if off >= size:
                break
            if not d[bm + k // 8] >> (k % 8) & 1:
                continue
            end = min(off + 512, size)
            if runs and runs[-1][1] == off:
                runs[-1][1] = end
            else:
                runs.append([off, end])
    for s, t in runs:
        print(s, t)


def patch(src, dst, code):
    d = bytearray(open(src, 'rb').read())

    def le32(o, v):
        d[o:o + 4] = struct.pack('<I', v)

    def le64(o, v):
        d[o:o + 8] = struct.pack('<Q', v)
    exec(code, {'d': d, 'le32': le32, 'le64': le64, 'struct': struct,
                'header': header})
    open(dst, 'wb').write(d)


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'make':
        make(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8]))
    elif cmd == 'map':
        data_map(sys.argv[2])
    elif cmd == 'patch':
        patch(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
