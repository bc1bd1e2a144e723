#!/bin/bash
# qcow2 resize through a --growable mount (truncate on the mounted file),
# against qemu-img resize of a copy of the same image: shrinking over data
# frees the clusters past the end (no leaks: `qemu-img check` clean), the
# two results have the same virtual size and content, snapshots keep
# theirs, growing again reads zeroes, and a daemon killed mid-shrink leaves
# no corruption.
. "$(dirname "$0")/../lib.sh"

vsize() {
    qemu-img info --output=json "$1" |
        sed -n 's/^ *"virtual-size": \([0-9]*\),*$/\1/p'
}

# leaks and errors both fail: the shrink must free exactly what it drops
clean() {
    qemu-img check "$1" >"$T/check" 2>&1 || fail "$2: $(cat "$T/check")"
}

# both IMAGE-through-mount and QEMU-COPY resized to SIZE must agree (on
# their first UPTO bytes only, when given)
resize_both() {
    local img=$1 ref=$2 size=$3 what=$4 upto=${5:-}
    mount_img --growable "$img" "$T/m.raw"
    truncate -s "$size" "$T/m.raw"
    expect_eq "$(stat -c %s "$T/m.raw")" "$size" "$what: size on the mount"
    unmount_img "$T/m.raw"
    qemu-img resize -q --shrink -f qcow2 "$ref" "$size"
    expect_eq "$(vsize "$img")" "$(vsize "$ref")" "$what: virtual size"
    clean "$img" "$what"
    if [ -n "$upto" ]; then
        qemu-img convert -O raw "$img" "$T/img.raw"
        qemu-img convert -O raw "$ref" "$T/ref.raw"
        cmp -s -n "$upto" "$T/img.raw" "$T/ref.raw" ||
            fail "$what: content differs from qemu-img resize's"
        rm -f "$T/img.raw" "$T/ref.raw"
        return
    fi
    qemu-img compare -q -f qcow2 -F qcow2 "$img" "$ref" ||
        fail "$what: content differs from qemu-img resize's"
}

# 1. v3, 64 KiB clusters, data everywhere: shrink to an unaligned size,
#    grow back (the kept cluster's tail and all past it read as zeroes, as
#    a file's do; qemu-img resize leaves the old bytes of that tail, so the
#    two are compared up to the shrunk size only)
qemu-img create -q -f qcow2 "$T/a.qcow2" 24M
qemu-io -f qcow2 -c "write -P 0x5a 0 24M" -c "write -P 0x11 3M 70k" \
    -c "write -z 9M 1M" "$T/a.qcow2" >/dev/null
cp "$T/a.qcow2" "$T/b.qcow2"
resize_both "$T/a.qcow2" "$T/b.qcow2" $((3 * 1048576 + 12800)) "v3 shrink"
used=$(qemu-img check --output=json "$T/a.qcow2" |
       sed -n 's/^ *"allocated-clusters": \([0-9]*\),*$/\1/p')
[ "$used" -le 50 ] || fail "v3 shrink: $used clusters still allocated"
resize_both "$T/a.qcow2" "$T/b.qcow2" $((40 << 20)) "v3 grow after shrink" \
    $((3 * 1048576 + 12800))
qemu-io -f qcow2 -c "read -P 0 $((3 * 1048576 + 12800)) $((36 << 20))" \
    "$T/a.qcow2" >"$T/io" 2>&1
grep -q "read $((36 << 20))/$((36 << 20))" "$T/io" && ! grep -q "fail" "$T/io" ||
    fail "grown tail does not read zeroes: $(cat "$T/io")"

# 2. v2, 4 KiB clusters (many L2 tables dropped), shrink to 512 and back
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4k "$T/c.qcow2" 64M
qemu-io -f qcow2 -c "write -P 0x33 0 8M" -c "write -P 0x44 40M 8M" \
    "$T/c.qcow2" >/dev/null
cp "$T/c.qcow2" "$T/d.qcow2"
resize_both "$T/c.qcow2" "$T/d.qcow2" $((5 << 20)) "v2 shrink"
resize_both "$T/c.qcow2" "$T/d.qcow2" 512 "v2 shrink to 512"
resize_both "$T/c.qcow2" "$T/d.qcow2" $((1 << 20)) "v2 grow from 512" 512

# 3. snapshots: clusters the snapshot shares stay, its content is intact,
#    the active layer's own clusters past the end are freed
qemu-img create -q -f qcow2 -o cluster_size=16k "$T/s.qcow2" 16M
qemu-io -f qcow2 -c "write -P 0x61 0 16M" "$T/s.qcow2" >/dev/null
qemu-img snapshot -c before "$T/s.qcow2"
qemu-io -f qcow2 -c "write -P 0x62 8M 4M" "$T/s.qcow2" >/dev/null
qemu-img convert -O raw -l snapshot.name=before "$T/s.qcow2" "$T/snap.raw"
cp "$T/s.qcow2" "$T/s2.qcow2"
resize_both "$T/s.qcow2" "$T/s2.qcow2" $((6 << 20)) "shrink with a snapshot"
# (qemu-img convert -l reads a snapshot at the image's current size)
qemu-img convert -O raw -l snapshot.name=before "$T/s.qcow2" "$T/snap2.raw"
cmp -s -n $((6 << 20)) "$T/snap.raw" "$T/snap2.raw" ||
    fail "snapshot content changed"
qemu-img snapshot -a before "$T/s.qcow2"
clean "$T/s.qcow2" "snapshot applied after the shrink"
expect_eq "$(vsize "$T/s.qcow2")" 16777216 "snapshot's own size"
qemu-img compare -q -f qcow2 -F raw "$T/s.qcow2" "$T/snap.raw" ||
    fail "applied snapshot differs"

# 4. ftruncate down and up on an open file, data in between
qemu-img create -q -f qcow2 "$T/f.qcow2" 8M
mount_img --growable "$T/f.qcow2" "$T/f.raw"
python3 - "$T/f.raw" <<'PY' || fail "ftruncate down and up"
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"\x77" * (8 << 20), 0)
os.ftruncate(fd, 1000000)
os.ftruncate(fd, 3 << 20)
assert os.fstat(fd).st_size == 3 << 20
assert os.pread(fd, 1000000, 0) == b"\x77" * 1000000, "kept data"
assert os.pread(fd, (3 << 20) - 1000000, 1000000) == bytes((3 << 20) - 1000000), "zeroes"
os.pwrite(fd, b"end", (3 << 20) - 3)
os.close(fd)
PY
unmount_img "$T/f.raw"
clean "$T/f.qcow2" "ftruncate"
qemu-io -f qcow2 -c "read -P 0x77 0 1000000" -c "read -P 0 1000000 1000000" \
    "$T/f.qcow2" >"$T/io" 2>&1
! grep -q "fail" "$T/io" || fail "ftruncate content: $(cat "$T/io")"

# 5. killed mid-shrink (4 KiB clusters: thousands of clusters to free):
#    leaks are allowed, corruption is not, and a reopen still works
qemu-img create -q -f qcow2 -o cluster_size=4k "$T/k.qcow2" 48M
qemu-io -f qcow2 -c "write -P 0x21 0 48M" "$T/k.qcow2" >/dev/null
for i in 1 2 3; do
    mount_img --growable "$T/k.qcow2" "$T/k.raw"
    pid=$(cat "$T"/pid.* | tail -1)
    size=$((48 - i * 12))M
    truncate -s "$size" "$T/k.raw" 2>/dev/null &
    tpid=$!
    sleep "0.0$((i * 2))"
    crash_daemon "$pid" "$T/k.raw"
    wait "$tpid" 2>/dev/null || true
    no_corruption "$T/k.qcow2" "killed mid-shrink $i"
done
mount_img --growable "$T/k.qcow2" "$T/k.raw"
truncate -s 1M "$T/k.raw"
unmount_img "$T/k.raw"
no_corruption "$T/k.qcow2" "shrink after the crashes"
qemu-io -f qcow2 -c "read -P 0x21 0 1M" "$T/k.qcow2" >"$T/io" 2>&1
! grep -q "fail" "$T/io" || fail "data after the crashes: $(cat "$T/io")"

# 6. an overlay shrunk and grown again over a longer backing file: the new
#    space reads as zeroes, not as the backing file (as QEMU does)
qemu-img create -q -f qcow2 "$T/base.qcow2" 8M
qemu-io -f qcow2 -c "write -P 0x11 0 8M" "$T/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/o.qcow2"
qemu-io -f qcow2 -c "write -P 0x22 1M 2M" "$T/o.qcow2" >/dev/null
cp "$T/o.qcow2" "$T/o2.qcow2"
resize_both "$T/o.qcow2" "$T/o2.qcow2" $((2 * 1048576 + 4096)) "overlay shrink"
resize_both "$T/o.qcow2" "$T/o2.qcow2" $((12 << 20)) "overlay grow"
qemu-io -f qcow2 -c "read -P 0 $((2 * 1048576 + 4096)) $((10 * 1048576 - 4096))" \
    "$T/o.qcow2" >"$T/io" 2>&1
! grep -q fail "$T/io" || fail "backing data shows in the grown overlay"

# 7. compressed clusters and extended L2 (subclusters) past the new end
qemu-img create -q -f qcow2 "$T/src.qcow2" 16M
qemu-io -f qcow2 -c "write -P 0x41 0 16M" "$T/src.qcow2" >/dev/null
qemu-img convert -c -O qcow2 "$T/src.qcow2" "$T/z.qcow2"
qemu-img create -q -f qcow2 -o extended_l2=on "$T/x.qcow2" 16M
qemu-io -f qcow2 -c "write -P 0x42 0 16M" -c "write -z 5M 6k" "$T/x.qcow2" >/dev/null
for f in z x; do
    cp "$T/$f.qcow2" "$T/$f-ref.qcow2"
    resize_both "$T/$f.qcow2" "$T/$f-ref.qcow2" $((5 * 1048576 + 4096)) "shrink $f"
done
