# Helpers shared by the vmdk integration tests. Source after ../lib.sh.

# holes_vs_qemu MOUNTED_RAW IMAGE: the data ranges SEEK_DATA/SEEK_HOLE find
# on the mount equal the ranges qemu-img map reports as data.
holes_vs_qemu() {
    local mnt=$1 img=$2
    qemu-img map -U --output=json "$img" >"$T/map.json"
    python3 - "$mnt" "$T/map.json" <<'PY' || fail "$img: SEEK_DATA/SEEK_HOLE differ from qemu-img map"
import json, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
ours, off = [], 0
while off < size:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    ours.append((d, h))
    off = h
theirs = []
for e in json.load(open(sys.argv[2])):
    if e["data"]:
        if theirs and theirs[-1][1] == e["start"]:
            theirs[-1] = (theirs[-1][0], e["start"] + e["length"])
        else:
            theirs.append((e["start"], e["start"] + e["length"]))
if ours != theirs:
    print("ours  ", ours[:10], len(ours))
    print("theirs", theirs[:10], len(theirs))
    sys.exit(1)
PY
}

# A 24 MiB raw pattern with holes, zero runs and odd-sized data runs.
make_pattern() {
    local out=$1
    python3 - "$out" <<'PY'
import os, random, sys
random.seed(7)
with open(sys.argv[1], "wb") as f:
    f.truncate(24 << 20)
    for i in range(40):
        off = random.randrange(0, (24 << 20) - 300000)
        n = random.choice([512, 4096, 65536, 70000, 262144])
        f.seek(off)
        f.write(os.urandom(n) if i % 3 else bytes([i]) * n)
PY
}

# random_writes MOUNT SHADOW SEED COUNT: the same writes to both, then spot
# reads that must agree.
random_writes() {
    python3 - "$@" <<'PY' || fail "random writes: read-back differs from the shadow"
import os, random, sys
mnt, shadow, seed, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
random.seed(seed)
size = os.path.getsize(mnt)
fd = os.open(mnt, os.O_RDWR); sd = os.open(shadow, os.O_RDWR)
for i in range(n):
    ln = random.choice([1, 512, 4096, 65536, 100000, 393216])
    off = random.randrange(0, size - ln)
    if random.random() < 0.6:
        off -= off % 512
    k = random.random()
    data = os.urandom(ln) if k < 0.7 else bytes(ln) if k < 0.85 else bytes([i % 256]) * ln
    os.pwrite(fd, data, off); os.pwrite(sd, data, off)
for i in range(60):
    off = random.randrange(0, size - 300000); ln = random.randrange(1, 300000)
    if os.pread(fd, ln, off) != os.pread(sd, ln, off):
        print("differs at", off, ln); sys.exit(1)
PY
}

cid_of() { grep -a -o -m1 '^CID=[0-9a-f]*' "$1"; }
