#!/usr/bin/env python3
"""Make synthetic UDIF (.dmg) test images and their expected raw content.

usage: mkimage-dmg.py OUTDIR
       mkimage-dmg.py --big-zlib MIB FILE.dmg   (benchmark image, 1 MiB chunks)

Writes into OUTDIR, for each image NAME.dmg, NAME.raw (what a reader must
return). Written from the UDIF layout (koly trailer, XML plist or resource
fork with blkx/mish tables); no Apple tool is involved, so these cover what
the public sample images do not: LZMA chunks, comment chunks, a data fork
that does not start at 0, a mish data offset, several partitions, gaps no
table describes, and the resource-fork-only form.

  all-codecs.dmg   raw, zero, ignore, comment, zlib, bzip2, lzma (xz) chunks,
                   data fork at 8 KiB, one table with a data offset, a gap
  qemu-compat.dmg  only what QEMU 7.2 reads (raw, zero, ignore, zlib),
                   data fork at 4 KiB: the oracle can check it too
  rsrc-fork.dmg    no XML plist: the blkx tables live in a resource fork
"""
import bz2
import lzma
import os
import plistlib
import random
import struct
import sys
import zlib

SECTOR = 512
ZERO, RAW, IGNORE, COMMENT = 0x00000000, 0x00000001, 0x00000002, 0x7FFFFFFE
ZLIB, BZIP2, LZMA, TERM = 0x80000005, 0x80000006, 0x80000008, 0xFFFFFFFF


def pattern(n_sectors, seed):
    """Compressible but varied content: text lines mixed with random runs."""
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < n_sectors * SECTOR:
        if rnd.random() < 0.7:
            out += b"sector %08d of test image seed %d: %s\n" % (
                len(out) // SECTOR, seed, b"abcdefgh" * rnd.randint(0, 6))
        else:
            out += bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64)))
    return bytes(out[: n_sectors * SECTOR])


def compress(kind, data):
    if kind == ZLIB:
        return zlib.compress(data, 6)
    if kind == BZIP2:
        return bz2.compress(data, 9)
    if kind == LZMA:
        return lzma.compress(data, format=lzma.FORMAT_XZ)
    if kind == RAW:
        return data
    return b""


class Image:
    """Lay out a data fork, then the blkx tables, then the koly trailer."""

    def __init__(self, prefix_len):
        self.prefix = bytes((i * 37) & 0xFF for i in range(prefix_len))
        self.fork = bytearray()     # the data fork
        self.tables = []            # (first_sector, n_sectors, mish bytes)
        self.disk = {}              # sector -> content of described sectors

    def table(self, first, chunks, data_offset=0, seed=0):
        """chunks: list of (type, n_sectors). Returns the sectors covered."""
        entries = []
        sector = 0
        for i, (kind, count) in enumerate(chunks):
            content = pattern(count, seed * 100 + i) if kind in (
                RAW, ZLIB, BZIP2, LZMA) else bytes(count * SECTOR)
            blob = compress(kind, content)
            off = len(self.fork) - data_offset if blob else 0
            self.fork += blob
            entries.append(struct.pack(">IIQQQQ", kind, 0, sector, count,
                                       off, len(blob)))
            if kind != COMMENT:
                self.disk[first + sector] = content
                sector += count
        entries.append(struct.pack(">IIQQQQ", TERM, 0, sector, 0, 0, 0))
        hdr = struct.pack(">4sIQQQII", b"mish", 1, first, sector,
                          data_offset, 0, len(entries) - 1)
        hdr += bytes(24)                            # reserved
        hdr += struct.pack(">II", 2, 32) + bytes(128)  # checksum (CRC32, 0)
        hdr += struct.pack(">I", len(entries))
        assert len(hdr) == 204
        self.tables.append((first, sector, hdr + b"".join(entries)))
        return sector

    def raw(self, n_sectors):
        out = bytearray(n_sectors * SECTOR)
        for first, content in self.disk.items():
            out[first * SECTOR: first * SECTOR + len(content)] = content
        return bytes(out)

    def koly(self, n_sectors, df_off, xml_off, xml_len, rs_off, rs_len,
             fork_len=None):
        if fork_len is None:
            fork_len = len(self.fork)
        k = struct.pack(">4sIIIQQQQQII", b"koly", 4, 512, 1, 0, df_off,
                        fork_len, rs_off, rs_len, 1, 1)
        k += bytes(16)                                   # segment id
        k += struct.pack(">II", 2, 32) + bytes(128)      # data checksum
        k += struct.pack(">QQ", xml_off, xml_len)
        k += bytes(120)
        k += struct.pack(">II", 2, 32) + bytes(128)      # master checksum
        k += struct.pack(">IQ", 1, n_sectors) + bytes(12)
        assert len(k) == 512
        return k

    def write_xml(self, path, n_sectors):
        blkx = [{"Attributes": "0x0050", "CFName": "table %d" % i,
                 "Data": t[2], "ID": str(i - 1), "Name": "table %d" % i}
                for i, t in enumerate(self.tables)]
        xml = plistlib.dumps({"resource-fork": {"blkx": blkx}})
        df_off = len(self.prefix)
        xml_off = df_off + len(self.fork)
        with open(path, "wb") as f:
            f.write(self.prefix + self.fork + xml)
            f.write(self.koly(n_sectors, df_off, xml_off, len(xml), 0, 0))

    def write_rsrc(self, path, n_sectors):
        data = b"".join(struct.pack(">I", len(t[2])) + t[2]
                        for t in self.tables)
        rmap = bytes(30)          # a map with no types: we scan the data
        fork = struct.pack(">IIII", 256, 256 + len(data), len(data),
                           len(rmap)) + bytes(240) + data + rmap
        df_off = len(self.prefix)
        rs_off = df_off + len(self.fork)
        with open(path, "wb") as f:
            f.write(self.prefix + self.fork + fork)
            f.write(self.koly(n_sectors, df_off, 0, 0, rs_off, len(fork)))


def all_codecs(out):
    img = Image(8192)
    s = img.table(0, [(ZLIB, 64)], seed=1)
    s += img.table(s, [(RAW, 256), (ZERO, 256), (COMMENT, 0), (BZIP2, 512),
                       (LZMA, 512), (IGNORE, 128), (LZMA, 2048)], seed=2)
    s += 64                                         # a gap: reads as zeroes
    s += img.table(s, [(ZLIB, 2048), (ZLIB, 2048), (BZIP2, 300)],
                   data_offset=0, seed=3)
    # this table's chunk offsets count from a data offset inside the fork
    img.fork += bytes(1000)
    s += img.table(s, [(ZLIB, 100), (RAW, 8)], data_offset=700, seed=4)
    img.write_xml(os.path.join(out, "all-codecs.dmg"), s)
    return "all-codecs", img.raw(s)


def qemu_compat(out):
    img = Image(4096)
    s = img.table(0, [(ZLIB, 34)], seed=5)
    s += img.table(s, [(RAW, 100), (ZERO, 1000), (ZLIB, 2048), (IGNORE, 6)],
                   seed=6)
    s += img.table(s, [(ZLIB, 33)], seed=7)
    img.write_xml(os.path.join(out, "qemu-compat.dmg"), s)
    return "qemu-compat", img.raw(s)


def rsrc_fork(out):
    img = Image(0)
    s = img.table(0, [(ZLIB, 1000), (ZERO, 24)], seed=8)
    s += img.table(s, [(RAW, 16), (ZLIB, 2048)], seed=9)
    img.write_rsrc(os.path.join(out, "rsrc-fork.dmg"), s)
    return "rsrc-fork", img.raw(s)


def big_zlib(mib, path):
    """A UDZO-like image of MIB 1 MiB zlib chunks, about 3:1 compressible:
    text mixed with random bytes, varied per chunk. Streams to the file."""
    rnd = random.Random(5)
    base = bytearray()
    while len(base) < 1 << 20:
        base += b"line %d of a disk image, some text in it %s\n" % (
            len(base), b"xyz" * rnd.randint(0, 9))
        base += bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 24)))
    base = base[: 1 << 20]
    img = Image(0)
    entries = []
    with open(path, "wb") as f:
        for i in range(mib):
            base[0:8] = i.to_bytes(8, "little")
            blob = zlib.compress(bytes(base), 1)
            entries.append(struct.pack(">IIQQQQ", ZLIB, 0, i * 2048, 2048,
                                       f.tell(), len(blob)))
            f.write(blob)
        fork_len = f.tell()
        entries.append(struct.pack(">IIQQQQ", TERM, 0, mib * 2048, 0, 0, 0))
        hdr = struct.pack(">4sIQQQII", b"mish", 1, 0, mib * 2048, 0, 0,
                          mib) + bytes(24)
        hdr += struct.pack(">II", 2, 32) + bytes(128)
        hdr += struct.pack(">I", len(entries))
        xml = plistlib.dumps({"resource-fork": {"blkx": [
            {"Attributes": "0x0050", "Data": hdr + b"".join(entries),
             "ID": "0", "Name": "disk"}]}})
        f.write(xml)
        f.write(img.koly(mib * 2048, 0, fork_len, len(xml), 0, 0, fork_len))


def main():
    if sys.argv[1] == "--big-zlib":
        big_zlib(int(sys.argv[2]), sys.argv[3])
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for make in (all_codecs, qemu_compat, rsrc_fork):
        name, raw = make(out)
        with open(os.path.join(out, name + ".raw"), "wb") as f:
            f.write(raw)


if __name__ == "__main__":
    main()
