#!/usr/bin/env python3
"""make-tree.py DIR SEED COUNT MAXSIZE: a random tree of COUNT files under
DIR, in nested directories, with names that need long-name entries (mixed
case, spaces, several dots, long, non-ASCII), empty files and empty
directories. Names stay ones FAT holds as they are (the renaming of names
FAT cannot hold is tested apart), and unique without case in each
directory, so the tree mtools copies out must equal DIR exactly."""
import os
import random
import sys

top, seed, count, maxsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
words = ["alpha", "Beta", "GAMMA", "delta file", "Epsilon", "zeta.tar", "eta",
         "Theta Long Name", "iota", "kappa-1", "lambda_2", "mu (copy)",
         "caf\u00e9", "na\u00efve", "\u65e5\u672c", "x", "README", "data.bin"]
exts = ["", ".txt", ".TXT", ".c", ".html", ".tar.gz", ".jpeg", ".Md", ".1"]
os.makedirs(top, exist_ok=True)
dirs = [top]
used = {top: set()}


def fresh(d, make):
    while True:
        n = rnd.choice(words) + (str(rnd.randrange(1000)) if rnd.random() < .7 else "")
        if rnd.random() < .1:
            n = n + " " + "long" * rnd.randrange(5, 40)
        n += make()
        if n.lower() not in used[d]:
            used[d].add(n.lower())
            return n


for _ in range(count // 12 + 2):
    parent = rnd.choice(dirs)
    d = os.path.join(parent, fresh(parent, lambda: ""))
    os.mkdir(d)
    dirs.append(d)
    used[d] = set()
for i in range(count):
    d = rnd.choice(dirs)
    name = fresh(d, lambda: rnd.choice(exts))
    r = rnd.random()
    size = 0 if r < .1 else rnd.randrange(1, 600) if r < .5 else rnd.randrange(maxsize)
    with open(os.path.join(d, name), "wb") as f:
        f.write(rnd.randbytes(size))
