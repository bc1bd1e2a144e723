#!/usr/bin/env python3
"""Decrypt the payload of a LUKS1 image with its master key, independently
of imgfuse and QEMU: the key comes from `cryptsetup luksDump
--dump-master-key`, the AES modes from Python's `cryptography`.

usage: luks-oracle.py IMAGE MASTER_KEY_HEX OUT.raw
Reads the cipher mode, hash and payload offset from the header itself.
AES only (ecb, cbc, ctr, xts; plain, plain64, essiv:HASH)."""
import hashlib
import struct
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

img, mk, out = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
data = open(img, "rb").read()
assert data[:6] == b"LUKS\xba\xbe"
name = data[8:40].split(b"\0")[0].decode()
mode = data[40:72].split(b"\0")[0].decode()
payload = struct.unpack(">I", data[104:108])[0] * 512
assert name == "aes", name
mname, _, iv = mode.partition("-")
ess = None
if iv.startswith("essiv:"):
    ess = Cipher(algorithms.AES(hashlib.new(iv[6:], mk).digest()), modes.ECB()).encryptor()


def ivec(sector):
    if iv == "plain":
        return struct.pack("<IIQ", sector & 0xffffffff, 0, 0)
    if iv == "plain64" or ess:
        b = struct.pack("<QQ", sector, 0)
        return ess.update(b) if ess else b
    return bytes(16)


with open(out, "wb") as f:
    for s, off in enumerate(range(payload, len(data) - 511, 512)):
        m = {"ecb": lambda: modes.ECB(), "cbc": lambda: modes.CBC(ivec(s)),
             "ctr": lambda: modes.CTR(ivec(s)), "xts": lambda: modes.XTS(ivec(s))}[mname]()
        d = Cipher(algorithms.AES(mk), m).decryptor()
        f.write(d.update(data[off:off + 512]) + d.finalize())
