#!/usr/bin/env python3
"""Turn an empty dynamic VHD (made by qemu-img) into a differencing disk of
PARENT: disk type 4, the parent's unique id, its name in the header and
parent locators (W2ku absolute that does not exist, then W2ru relative),
checksums recomputed. QEMU cannot create differencing VHDs; this follows
the VHD specification's layout.

usage: mkdiff.py CHILD PARENT_VHD RELATIVE_NAME HEADER_NAME
"""
import struct
import sys

child, parent, rel, hdr_name = sys.argv[1:5]


def csum(b, off):
    s = sum(b[:off]) + sum(b[off + 4:])
    return struct.pack('>I', ~s & 0xffffffff)


p = open(parent, 'rb').read()
d = bytearray(open(child, 'rb').read())
footer = bytearray(d[-512:])
dyn_off = struct.unpack('>Q', footer[16:24])[0]
dyn = bytearray(d[dyn_off:dyn_off + 1024])

# locator data goes where the trailing footer was; the footer moves on
loc_off = len(d) - 512
abs_name = 'C:\\nowhere\\' + rel
rel_name = '.\\' + rel
abs_data = abs_name.encode('utf-16-le')
rel_data = rel_name.encode('utf-16-le')
body = abs_data.ljust(512, b'\0') + rel_data.ljust(512, b'\0')

footer[60:64] = struct.pack('>I', 4)
footer[64:68] = b'\0' * 4
footer[64:68] = csum(footer, 64)

dyn[40:56] = p[-512 + 68:-512 + 84]                     # parent unique id
dyn[64:576] = hdr_name.encode('utf-16-be').ljust(512, b'\0')
dyn[576:600] = b'W2ku' + struct.pack('>IIIQ', 1, len(abs_data), 0, loc_off)
dyn[600:624] = b'W2ru' + struct.pack('>IIIQ', 1, len(rel_data), 0, loc_off + 512)
dyn[36:40] = b'\0' * 4
dyn[36:40] = csum(dyn, 36)

d[0:512] = footer
d[dyn_off:dyn_off + 1024] = dyn
out = bytes(d[:loc_off]) + body + bytes(footer)
open(child, 'wb').write(out)
