#!/usr/bin/env python3
"""Writes through a mounted image in fixed steps, keeping the file open, and
prints the image file's length (stat) after each step, one "step size" line
each. Run once with and once without the preallocate filter: the same
steps give the same layout, so the unfiltered lengths predict the
filtered ones (see test-preallocate-sizes.sh).

usage: steps.py IMAGE MOUNTED [kill PIDFILE]
With "kill", the daemon gets SIGKILL after the last step while the file is
still open (a crash with a preallocated tail)."""
import os
import signal
import sys
import time

img, mnt = sys.argv[1], sys.argv[2]
MiB = 1 << 20


def size():
    return os.stat(img).st_size


fd = os.open(mnt, os.O_WRONLY)
steps = [
    ("w0", lambda: os.pwrite(fd, b"\xa1" * MiB, 0)),
    ("w1", lambda: os.pwrite(fd, b"\xa2" * (2 * MiB), 8 * MiB)),
    ("w2", lambda: os.pwrite(fd, b"\xa3" * 65536, 40 * MiB)),
    ("fsync", lambda: os.fsync(fd)),
    ("w3", lambda: os.pwrite(fd, b"\xa4" * (2 * MiB), 100 * MiB)),
    ("w4", lambda: os.pwrite(fd, b"\xa5" * (3 * MiB), 120 * MiB)),
]
print("open", size(), flush=True)
for name, act in steps:
    act()
    print(name, size(), flush=True)
if len(sys.argv) > 3 and sys.argv[3] == "kill":
    os.kill(int(open(sys.argv[4]).read()), signal.SIGKILL)
    time.sleep(0.2)
    os._exit(0)
os.close(fd)
print("close", size(), flush=True)
