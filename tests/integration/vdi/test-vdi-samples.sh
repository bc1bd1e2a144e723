#!/bin/bash
# Real VDI images (qemu-made dynamic and static, VirtualBox's basic.vdi)
# read byte for byte as the corpus MANIFEST and qemu say, and SEEK_DATA /
# SEEK_HOLE follow the block map as qemu-img map reports it.
. "$(dirname "$0")/../lib.sh"

# data_runs FILE: "start-end ..." of the data regions, via SEEK_DATA/HOLE
data_runs() {
    python3 - "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size, off, out = os.fstat(fd).st_size, 0, []
while off < size:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    out.append("%d-%d" % (d, h))
    off = h
print(" ".join(out))
PY
}

# qemu_runs IMG: the same from qemu-img map
qemu_runs() {
    qemu-img map -f vdi --output=json "$1" | python3 -c '
import json, sys
runs = []
for e in json.load(sys.stdin):
    if e["data"]:
        s, t = e["start"], e["start"] + e["length"]
        if runs and runs[-1][1] == s:
            runs[-1][1] = t
        else:
            runs.append([s, t])
print(" ".join("%d-%d" % (a, b) for a, b in runs))'
}

check() {
    local img=$1 want=$2 mnt=$T/mnt.$RANDOM got
    mount_img -r "$img" "$mnt"
    got=$(sha "$mnt")
    expect_eq "$got" "$want" "$(basename "$img") content"
    expect_eq "$got" "$(qemu_raw_sha "$img" vdi)" "$(basename "$img") vs qemu"
    expect_eq "$(data_runs "$mnt")" "$(qemu_runs "$img")" "$(basename "$img") data runs"
    unmount_img "$mnt"
    note "$(basename "$img"): ok"
}

for f in gen-vdi-dynamic gen-vdi-static basic; do
    zcat "$DATA/vdi/$f.vdi.gz" >"$T/$f.vdi"
done
check "$T/gen-vdi-dynamic.vdi" \
    8a6d8e5ff7853c07d6e79ddbbe8d80bc6a5e7981a01ed0a917f6786c0ce28ccc
check "$T/gen-vdi-static.vdi" \
    711912836f8c3599bb01399a0cbd150ac7cf4a48a3fddef96c885002453eda97
check "$T/basic.vdi" \
    92d551781f9b62f3c8601ffd375cc7547efb1127e3cd2acc652f50f2d31afb8c
