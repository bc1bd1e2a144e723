#!/bin/bash
# Partition tables that lie: entries past the end of the disk, an EBR chain
# that loops, a truncated GPT, tiny and huge disks. info and directory
# mounts finish quickly, show only partitions inside the disk, never crash.
. "$(dirname "$0")/../lib.sh"

mkdir -p "$T/m"
# mbr FILE SIZE ENTRY...: an MBR with 16-byte entries "type:start:sectors"
mbr() {
    python3 - "$@" <<'PY'
import struct, sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    f.truncate(size)
    sec = bytearray(512)
    for i, e in enumerate(sys.argv[3:]):
        t, start, n = (int(x, 0) for x in e.split(":"))
        sec[446 + 16 * i:462 + 16 * i] = struct.pack("<B3sB3sII", 0, b"\0\0\0", t, b"\0\0\0", start, n)
    sec[510:512] = b"\x55\xaa"
    f.seek(0); f.write(sec)
    # an EBR at sector 4096 whose link points back at itself: a loop
    ebr = bytearray(512)
    ebr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 1024)
    ebr[462:478] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x05, b"\0\0\0", 0, 8192)
    ebr[510:512] = b"\x55\xaa"
    f.seek(4096 * 512); f.write(ebr)
PY
}

# p1 inside, p2 runs past the end, p3 starts past the end, p4 extended with
# a looping EBR chain
mbr "$T/lie.img" $((8 << 20)) 0x83:2048:4096 0x83:8192:1000000 0x83:99999999:10 0x05:4096:8192
timeout 20 "$IMGFUSE" info --json "$T/lie.img" > "$T/info.json" 2>"$T/err" || fail "info: $(cat "$T/err")"
python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["partition-table"]
for p in t["partitions"]:
    assert p["start"] + p["length"] <= 8 << 20, p
assert 1 in [p["number"] for p in t["partitions"]], t
' "$T/info.json" || fail "partitions past the end shown: $(cat "$T/info.json")"
timeout 20 "$IMGFUSE" "$T/lie.img" "$T/m" 2>"$T/err" || fail "mount: $(cat "$T/err")"
_MOUNTS+=("$T/m")
for f in "$T"/m/*-p*.raw; do
    s=$(stat -c %s "$f")
    [ "$s" -le $((8 << 20)) ] || fail "$f: $s bytes, more than the disk"
done
dd if="$T/m/lie-p1.raw" of=/dev/null bs=64k status=none || fail "read of p1"
fusermount3 -u "$T/m"

# a GPT whose primary header is cut short, and disks too small for a table
truncate -s 16M "$T/gpt.img"
sgdisk -n 1:2048:+4M "$T/gpt.img" >/dev/null
dd if=/dev/zero of="$T/gpt.img" bs=512 seek=1 count=1 conv=notrunc status=none
timeout 20 "$IMGFUSE" info "$T/gpt.img" >/dev/null 2>&1 || fail "info of a damaged GPT"
head -c 512 "$T/lie.img" > "$T/tiny.img"
: > "$T/empty.img"
for f in tiny empty; do
    timeout 20 "$IMGFUSE" info --json "$T/$f.img" >/dev/null || fail "info of $f.img"
done
# a table in a huge sparse image is read without reading the disk
qemu-img create -q -f qcow2 "$T/huge.qcow2" 64T
timeout 20 "$IMGFUSE" info --json "$T/huge.qcow2" >/dev/null || fail "info of a 64 TiB disk"
echo ok
