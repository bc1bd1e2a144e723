#!/usr/bin/python3
"""The guest side of the replay tests: random writes through a mounted
image with an fsync every few writes, and a journal of them for
tests/tools/replay-writes.py. Around each fsync it records the write log's
size (the logwrites filter's log=) at the call and at its return, so the
replay knows which flush made that fsync durable.
usage: replay-workload.py MOUNTED LOG JOURNAL WRITES SEED"""
import json, os, random, sys

mnt, log, journal, nwrites, seed = sys.argv[1:6]
r = random.Random(int(seed))
fd = os.open(mnt, os.O_RDWR)
size = os.fstat(fd).st_size
with open(journal, 'w') as j:
    since = 0
    for i in range(int(nwrites)):
        ln = r.choice([512, 4096, 4096, 65536, r.randint(1, 100000)])
        off = r.randrange(size - ln)
        if r.random() < 0.5:
            off -= off % 4096
        dseed = r.getrandbits(32)
        os.pwrite(fd, random.Random(dseed).randbytes(ln), off)
        j.write(json.dumps(['w', off, ln, dseed]) + '\n')
        since += 1
        if since >= r.randint(10, 40):
            before = os.stat(log).st_size
            os.fsync(fd)
            j.write(json.dumps(['fsync', before, os.stat(log).st_size]) + '\n')
            since = 0
os.close(fd)
