#!/bin/bash
# imgfuse-test: serial (kill -9 timing)
# Persistent dirty bitmaps are kept up to date as QEMU does: an enabled
# bitmap gets the bits of every write, zero write and discard (rounded out
# to its granularity), a disabled one is left as it is, both stay valid
# after unmount. The oracle: qemu-img check/info and qemu-nbd exporting the
# bitmap (nbdinfo --map). A kill -9 leaves the tracked bitmap in-use and the
# image uncorrupted; damaged directories are dropped without a crash.
. "$(dirname "$0")/../lib.sh"

M=1048576
G=65536

# dirty_ranges IMG BITMAP: "start length" lines of the dirty extents
dirty_ranges() {
    local sock=$T/nbd.sock pidf=$T/nbd.pid
    rm -f "$sock" "$pidf"
    qemu-nbd -r -B "$2" -k "$sock" -f qcow2 --fork --persistent \
        --pid-file "$pidf" "$1" || fail "qemu-nbd cannot export $2"
    nbdinfo --map="qemu:dirty-bitmap:$2" "nbd+unix:///?socket=$sock" \
        >"$T/map" || { kill "$(cat "$pidf")"; fail "nbdinfo failed on $2"; }
    kill "$(cat "$pidf")"
    for _ in $(seq 1 100); do
        kill -0 "$(cat "$pidf")" 2>/dev/null || break
        [ "$(awk '{print $3}' "/proc/$(cat "$pidf")/stat" 2>/dev/null)" = Z ] && break
        sleep 0.05
    done
    awk '$3 == 1 { print $1, $2 }' "$T/map"
}

# expected START LEN...: the ranges rounded out to G, merged, as above
expected() {
    python3 - "$@" <<'PY'
import sys
g = 65536
a = [int(x) for x in sys.argv[1:]]
r = sorted((s // g * g, -(-(s + l) // g) * g) for s, l in zip(a[::2], a[1::2]))
out = []
for s, e in r:
    if out and s <= out[-1][1]:
        out[-1][1] = max(out[-1][1], e)
    else:
        out.append([s, e])
for s, e in out:
    print(s, e - s)
PY
}

# flags IMG NAME: the bitmap's flags as qemu-img info shows them, or "none"
flags() {
    qemu-img info -U --output=json "$1" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)["format-specific"]["data"]
for b in d.get("bitmaps", []):
    if b["name"] == sys.argv[1]:
        print(",".join(b["flags"]) or "-"); break
else:
    print("none")' "$2"
}

check_clean() {
    qemu-img check -q "$1" || fail "$2: qemu-img check finds errors"
}

img=$T/a.qcow2
mnt=$T/m.raw
qemu-img create -q -f qcow2 "$img" 64M
# b1 records qemu-io's write, then is disabled; b0 starts empty
qemu-img bitmap --add "$img" b1
qemu-io -f qcow2 -c "write -P 0x11 0 3M" "$img" >/dev/null
qemu-img bitmap --disable "$img" b1
qemu-img bitmap --add "$img" b0
expect_eq "$(dirty_ranges "$img" b0)" "" "b0 before mounting"
expect_eq "$(dirty_ranges "$img" b1)" "0 $((3 * M))" "b1 before mounting"

# ---- session 1: writes, an unaligned small write, a discard ------------
ranges=()
mount_img "$img" "$mnt"
dd if=/dev/urandom of="$mnt" bs=4096 count=3 seek=1000 conv=notrunc \
    status=none
ranges+=($((1000 * 4096)) $((3 * 4096)))
dd if=/dev/urandom of="$mnt" bs=1 count=10 seek=$((20 * M + 5)) conv=notrunc \
    status=none
ranges+=($((20 * M + 5)) 10)
fallocate -p -o $((40 * M)) -l $M "$mnt"
ranges+=($((40 * M)) $M)
dd if=/dev/urandom of="$mnt" bs=$M count=2 seek=10 conv=notrunc,fsync \
    status=none
ranges+=($((10 * M)) $((2 * M)))
# in_use on disk while mounted, as QEMU marks a bitmap it tracks
expect_eq "$(flags "$img" b0)" "in-use,auto" "b0 while mounted"
cp "$mnt" "$T/shadow"
unmount_img "$mnt"

check_clean "$img" "session 1"
expect_eq "$(flags "$img" b0)" "auto" "b0 flags after session 1"
expect_eq "$(flags "$img" b1)" "-" "b1 flags after session 1"
expect_eq "$(dirty_ranges "$img" b0)" "$(expected "${ranges[@]}")" \
    "b0 after session 1"
expect_eq "$(dirty_ranges "$img" b1)" "0 $((3 * M))" "b1 after session 1"
qemu-img compare -q -f qcow2 -F raw "$img" "$T/shadow" ||
    fail "session 1: data differs"
note "session 1: b0 has exactly the written ranges, b1 untouched, check clean"

# ---- session 2: the bits accumulate ------------------------------------
mount_img "$img" "$mnt"
dd if=/dev/urandom of="$mnt" bs=100 count=1 seek=$(((500 * G - 50) / 100)) \
    conv=notrunc status=none
ranges+=($(((500 * G - 50) / 100 * 100)) 100)
dd if=/dev/zero of="$mnt" bs=$M count=1 seek=63 conv=notrunc status=none
ranges+=($((63 * M)) $M)
unmount_img "$mnt"
check_clean "$img" "session 2"
expect_eq "$(flags "$img" b0)" "auto" "b0 flags after session 2"
expect_eq "$(dirty_ranges "$img" b0)" "$(expected "${ranges[@]}")" \
    "b0 after session 2"
expect_eq "$(dirty_ranges "$img" b1)" "0 $((3 * M))" "b1 after session 2"
note "session 2: bits accumulate"

# ---- a read-only mount changes nothing ---------------------------------
mount_img -r "$img" "$mnt"
cat "$mnt" >/dev/null
unmount_img "$mnt"
expect_eq "$(flags "$img" b0)" "auto" "b0 after a read-only mount"

# ---- kill -9 while writing ---------------------------------------------
mount_img "$img" "$mnt"
pid=$(cat "$T"/pid.* | tail -1)
( while :; do
      dd if=/dev/urandom of="$mnt" bs=64k count=16 seek=$((RANDOM % 60)) \
          conv=notrunc status=none || break
  done ) 2>/dev/null &
wpid=$!
sleep 0.5
crash_daemon "$pid" "$mnt"
wait "$wpid" 2>/dev/null || true
no_corruption "$img" "after kill -9"
expect_eq "$(flags "$img" b0)" "in-use,auto" "b0 after kill -9"
expect_eq "$(flags "$img" b1)" "-" "b1 after kill -9"
note "kill -9: b0 left in-use, no corruption"

# read-write again: refcounts rebuilt with the bitmaps counted, the
# inconsistent b0 left alone, b1 still valid
mount_img "$img" "$mnt"
dd if=/dev/urandom of="$mnt" bs=$M count=1 seek=30 conv=notrunc status=none
cp "$mnt" "$T/shadow"
unmount_img "$mnt"
check_clean "$img" "after the crash and a new session"
qemu-img compare -q -f qcow2 -F raw "$img" "$T/shadow" ||
    fail "after the crash: data differs"
expect_eq "$(flags "$img" b0)" "in-use,auto" "b0 after remount"
expect_eq "$(flags "$img" b1)" "-" "b1 after remount"
expect_eq "$(dirty_ranges "$img" b1)" "0 $((3 * M))" "b1 after remount"
note "remount after the crash: works, b0 stays in-use, b1 intact"

# ---- hostile bitmap directories: fallback (bitmaps dropped), no crash ---
qemu-img create -q -f qcow2 "$T/h.qcow2" 16M
qemu-img bitmap --add "$T/h.qcow2" b0
qemu-io -f qcow2 -c "write -P 0x22 0 1M" "$T/h.qcow2" >/dev/null

# patch SRC DST 'statements': e = offset of the bitmaps extension data
patch() {
    python3 - "$1" "$2" "$3" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
def be16(o, v): d[o:o + 2] = struct.pack('>H', v)
def be32(o, v): d[o:o + 4] = struct.pack('>I', v)
def be64(o, v): d[o:o + 8] = struct.pack('>Q', v)
def rd32(o): return struct.unpack('>I', d[o:o + 4])[0]
def rd64(o): return struct.unpack('>Q', d[o:o + 8])[0]
o = rd32(100)
while rd32(o) != 0x23852875:
    o += 8 + (rd32(o + 4) + 7) // 8 * 8
e = o + 8
dirp = rd64(e + 16)
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
PY
}

hostile() {
    local name=$1 bin rc
    patch "$T/h.qcow2" "$T/$name.qcow2" "$2"
    for bin in "$IMGFUSE" "$ROOT/build-asan/imgfuse"; do
        [ -x "$bin" ] || continue
        cp "$T/$name.qcow2" "$T/x.qcow2"
        rc=0
        timeout 30 "$bin" --pidfile "$T/pid.h" "$T/x.qcow2" "$T/h.raw" \
            2>"$T/err" || rc=$?
        _MOUNTS+=("$T/h.raw")
        if [ $rc -ne 0 ]; then
            [ $rc -lt 124 ] || fail "$name: rc $rc (crash or hang)"
            note "$name ($(basename "$(dirname "$bin")")): refused: $(head -1 "$T/err")"
            continue
        fi
        timeout 30 dd if=/dev/urandom of="$T/h.raw" bs=4096 count=4 seek=10 \
            conv=notrunc,fsync status=none || fail "$name: write failed"
        pid=$(cat "$T/pid.h")
        fusermount3 -u "$T/h.raw"
        for _ in $(seq 1 200); do
            # gone, or a zombie waiting for a slow reaper: either way exited
            kill -0 "$pid" 2>/dev/null || break
            [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null &&
            [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
            fail "$name: daemon did not exit"
        grep -q "AddressSanitizer\|runtime error" "$T/err" &&
            fail "$name: $(grep -m1 "Sanitizer\|runtime error" "$T/err")"
        no_corruption "$T/x.qcow2" "$name"
        expect_eq "$(flags "$T/x.qcow2" b0)" "none" "$name: bitmaps dropped"
        note "$name ($(basename "$(dirname "$bin")")): written, bitmaps dropped"
    done
}

hostile dir-beyond-file 'be64(e + 16, 1 << 40)'
hostile absurd-count 'be32(e, 0xffffffff)'
hostile huge-dir-size 'be64(e + 8, 1 << 62)'
hostile unknown-flag 'be32(dirp + 12, rd32(dirp + 12) | 0x100)'
hostile bad-granularity 'd[dirp + 17] = 40'
hostile extra-data 'be32(dirp + 20, 8)'
hostile huge-table 'be32(dirp + 8, 0x7fffffff)'
hostile table-beyond-file 'be64(dirp, 1 << 45)'
