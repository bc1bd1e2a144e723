#!/bin/bash
# Every subformat written by `qemu-img convert -O vmdk -o subformat=...`
# reads back equal to the source, SEEK_DATA/SEEK_HOLE match qemu-img map;
# then random writes mirrored into a shadow file leave an image that
# `qemu-img check` finds clean and `qemu-img compare` finds equal to the
# shadow, with the CID changed (streamOptimized: sequential new grains).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/vmdk-lib.sh"

make_pattern "$T/pattern.raw"
want=$(sha "$T/pattern.raw")

for sf in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
          streamOptimized; do
    img=$T/q-$sf.vmdk mnt=$T/mnt-$sf
    qemu-img convert -f raw -O vmdk -o subformat=$sf "$T/pattern.raw" "$img"
    cid0=$(cid_of "$img")
    [ $sf = monolithicSparse ] && probe= || probe="-F vmdk"
    mount_img $probe "$img" "$mnt"
    expect_eq "$(sha "$mnt")" "$want" "$sf content"
    holes_vs_qemu "$mnt" "$img"
    cp "$T/pattern.raw" "$T/shadow"
    if [ $sf = streamOptimized ]; then
        # new grains only: a region qemu left unallocated, written in order
        python3 - "$mnt" "$T/shadow" <<'PY' || fail "stream append"
import json, os, subprocess, sys
m = json.loads(subprocess.check_output(["qemu-img", "map", "-U", "--output=json",
                                         sys.argv[1].replace("mnt-", "q-") + ".vmdk"]))
hole = max((e for e in m if not e["data"]), key=lambda e: e["length"])
start = (hole["start"] + 65535) // 65536 * 65536
data = os.urandom(min(hole["length"] - 65536, 3 << 20) // 4096 * 4096 + 1000)
fd = os.open(sys.argv[1], os.O_WRONLY); sd = os.open(sys.argv[2], os.O_WRONLY)
for off in range(0, len(data), 4096):
    os.pwrite(fd, data[off:off + 4096], start + off)
    os.pwrite(sd, data[off:off + 4096], start + off)
PY
    else
        random_writes "$mnt" "$T/shadow" 3 200
    fi
    unmount_img "$mnt"
    qemu-img check -q "$img" || fail "$sf: qemu-img check found errors"
    qemu-img compare -q -f vmdk -F raw "$img" "$T/shadow" ||
        fail "$sf: image differs from the shadow after writes"
    [ "$(cid_of "$img")" != "$cid0" ] || fail "$sf: CID not changed by writes"
    note "$sf ok"
done
