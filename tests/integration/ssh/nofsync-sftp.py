#!/usr/bin/env python3
# An SFTP subsystem for the ssh tests: OpenSSH's sftp-server with the
# fsync@openssh.com extension taken out of its VERSION reply, so the client
# sees a server without fsync. Everything else is relayed byte for byte.
import os
import struct
import subprocess
import sys
import threading

p = subprocess.Popen(["/usr/lib/openssh/sftp-server"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, bufsize=0)


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def read_n(fd, n):
    buf = b""
    while len(buf) < n:
        d = os.read(fd, n - len(buf))
        if not d:
            sys.exit(0)
        buf += d
    return buf


def upstream():
    while True:
        d = os.read(0, 65536)
        if not d:
            break
        write_all(p.stdin.fileno(), d)
    p.stdin.close()


threading.Thread(target=upstream, daemon=True).start()
out = p.stdout.fileno()
body = read_n(out, struct.unpack(">I", read_n(out, 4))[0])
head, rest, keep = body[:5], body[5:], b""
while rest:
    ln = struct.unpack(">I", rest[:4])[0]
    name, rest = rest[4:4 + ln], rest[4 + ln:]
    ln = struct.unpack(">I", rest[:4])[0]
    data, rest = rest[4:4 + ln], rest[4 + ln:]
    if name != b"fsync@openssh.com":
        keep += struct.pack(">I", len(name)) + name + struct.pack(">I", len(data)) + data
body = head + keep
write_all(1, struct.pack(">I", len(body)) + body)
while True:
    d = os.read(out, 65536)
    if not d:
        break
    write_all(1, d)
p.wait()
