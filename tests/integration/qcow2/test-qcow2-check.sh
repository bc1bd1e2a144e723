#!/bin/bash
# `imgfuse check [-r leaks|all]` on qcow2 against `qemu-img check` as the
# oracle: clean images (snapshots, zlib and zstd compressed clusters,
# refcount_bits 1 and 64, extended L2), leaked clusters, refcounts of used
# clusters set to zero, pointers beyond the file; repairs leave qemu-img
# check clean and the guest data unchanged.
. "$(dirname "$0")/../lib.sh"

# rc IMG get|set CLUSTER [VALUE]: a stored 16-bit refcount
rc() {
    python3 - "$@" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(104)
cb = struct.unpack('>I', h[20:24])[0]
rt = struct.unpack('>Q', h[48:56])[0]
assert struct.unpack('>I', h[96:100])[0] == 4, '16-bit refcounts only'
per = (1 << cb) // 2
c = int(sys.argv[3])
f.seek(rt + (c // per) * 8)
blk = struct.unpack('>Q', f.read(8))[0] & ~0x1ff
assert blk, 'no refcount block'
f.seek(blk + (c % per) * 2)
if sys.argv[2] == 'get':
    print(struct.unpack('>H', f.read(2))[0])
else:
    f.write(struct.pack('>H', int(sys.argv[4])))
PY
}

# first_l2 IMG VALUE: overwrite the first entry of the first L2 table
first_l2() {
    python3 - "$@" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(104)
f.seek(struct.unpack('>Q', h[40:48])[0])
l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
assert l2, 'no L2 table'
f.seek(l2)
f.write(struct.pack('>Q', int(sys.argv[2], 0) & 0xffffffffffffffff))
PY
}

# first_data IMG: cluster index of the first allocated data cluster
first_data() {
    qemu-img map --output=json "$1" | python3 -c '
import json, sys
print([e for e in json.load(sys.stdin) if e["data"]][0]["offset"] // 65536)'
}

# check IMG EXPECTED-RC [ARGS...]: imgfuse check exits EXPECTED-RC
check() {
    local img=$1 want=$2 got=0
    shift 2
    "$IMGFUSE" check "$@" "$img" >"$T/out" 2>&1 || got=$?
    [ "$got" = "$want" ] || { cat "$T/out" >&2; fail "imgfuse check $* $img: exit $got, expected $want"; }
}
# qcheck IMG EXPECTED-RC: qemu-img check exits EXPECTED-RC
qcheck() {
    local got=0
    qemu-img check "$1" >"$T/qout" 2>&1 || got=$?
    [ "$got" = "$2" ] || { cat "$T/qout" >&2; fail "qemu-img check $1: exit $got, expected $2"; }
}
raw_sha() { qemu-img convert -O raw "$1" "$T/raw.tmp" && sha "$T/raw.tmp"; }

# a base image: data here and there, a snapshot, more data after it
base=$T/base.qcow2
qemu-img create -q -f qcow2 "$base" 64M
qemu-io -c 'write -P 1 0 3M' -c 'write -P 2 10M 1M' "$base" >/dev/null
qemu-img snapshot -c s1 "$base"
qemu-io -c 'write -P 3 1M 1M' -c 'write -P 4 40M 64k' "$base" >/dev/null
qcheck "$base" 0
check "$base" 0
grep -q 'no errors' "$T/out" || fail "clean image: $(cat "$T/out")"

# clean images with other features
python3 -c '
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(2048):
        f.write(((b"block %06d " % i) * 373)[:4096])
' "$T/text.raw"
qemu-img convert -c -f raw -O qcow2 -o compression_type=zlib,cluster_size=4k "$T/text.raw" "$T/z.qcow2"
qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$T/text.raw" "$T/zs.qcow2"
qemu-img info "$T/z.qcow2" >/dev/null
qemu-img create -q -f qcow2 -o refcount_bits=1 "$T/r1.qcow2" 16M
qemu-img create -q -f qcow2 -o refcount_bits=64,extended_l2=on "$T/r64.qcow2" 16M
qemu-io -c 'write -P 5 0 1M' -c 'write -P 6 5000k 4k' "$T/r1.qcow2" >/dev/null
qemu-io -c 'write -P 5 0 1M' -c 'write -P 6 5000k 4k' "$T/r64.qcow2" >/dev/null
qemu-img snapshot -c one "$T/z.qcow2"
for img in z zs r1 r64; do
    qcheck "$T/$img.qcow2" 0
    check "$T/$img.qcow2" 0
done
qemu-img check "$T/z.qcow2" | grep -q '[1-9][0-9.]*% compressed' ||
    fail "z.qcow2 has no compressed clusters"

# leaked clusters: three clusters at the end of the file counted once
img=$T/leak.qcow2
cp "$base" "$img"
sz=$(stat -c %s "$img")
truncate -s $((sz + 3 * 65536)) "$img"
for i in 0 1 2; do rc "$img" set $((sz / 65536 + i)) 1; done
qcheck "$img" 3
grep -q '^3 leaked clusters' "$T/qout" || fail "qemu-img: $(cat "$T/qout")"
check "$img" 3
grep -q '^3 leaked clusters' "$T/out" || fail "leaks: $(cat "$T/out")"
check "$img" 0 -r leaks
grep -q 'repaired 0 corruptions and 3 leaked clusters' "$T/out" ||
    fail "leak repair: $(cat "$T/out")"
qcheck "$img" 0
check "$img" 0

# a leak on a used cluster (refcount 2, referenced once): qemu-img counts
# the wrong OFLAG_COPIED too; -r leaks repairs both
img=$T/leak2.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -c 'write -P 7 0 256k' "$img" >/dev/null
c=$(first_data "$img")
rc "$img" set "$c" 2
qcheck "$img" 2
check "$img" 2
grep -q '^1 leaked clusters' "$T/out" || fail "leak2: $(cat "$T/out")"
check "$img" 0 -r leaks
qcheck "$img" 0

# corruption: a used cluster's refcount set to 0, shared (snapshot) and not
for src in "$base" "$T/leak2.qcow2"; do
    img=$T/corrupt.qcow2
    cp "$src" "$img"
    before=$(raw_sha "$img")
    c=$(first_data "$img")
    rc "$img" set "$c" 0
    qcheck "$img" 2
    check "$img" 2
    grep -q 'errors were found' "$T/out" || fail "corruption: $(cat "$T/out")"
    check "$img" 2 -r leaks
    check "$img" 0 -r all
    grep -q 'repaired [1-9][0-9]* corruptions' "$T/out" || fail "repair: $(cat "$T/out")"
    qcheck "$img" 0
    expect_eq "$(raw_sha "$img")" "$before" "data after -r all"
    [ "$(rc "$img" get "$c")" -ge 1 ] || fail "refcount not restored"
done

# pointers beyond the end of the file and misaligned: corruption, dropped
# by -r all (qemu-img check agrees on the verdict)
for e in 0x8000010000000000 0x8000000000050200; do
    img=$T/ptr.qcow2
    qemu-img create -q -f qcow2 "$img" 16M
    qemu-io -c 'write -P 8 0 256k' "$img" >/dev/null
    first_l2 "$img" "$e"
    qcheck "$img" 2
    check "$img" 2
    check "$img" 0 -r all
    qcheck "$img" 0
    check "$img" 0
done

# a read-only check never writes
img=$T/ro.qcow2
cp "$T/leak2.qcow2" "$img"
rc "$img" set "$(first_data "$img")" 0
s0=$(sha "$img")
check "$img" 2
expect_eq "$(sha "$img")" "$s0" "read-only check wrote"

# a lazy_refcounts image QEMU left dirty (abort after a write): both count
# the same errors; opened for repair, imgfuse rebuilds the refcounts
img=$T/lazy.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$img" 16M
qemu-io -c 'write -P 9 0 1M' -c abort "$img" >/dev/null 2>&1 || true
before=$(raw_sha "$img")
qcheck "$img" 2
check "$img" 2
q=$(grep -o '^[0-9]* errors' "$T/qout")
expect_eq "$(grep -o '^[0-9]* errors' "$T/out")" "$q" "errors in a dirty image"
[ -n "$q" ] || fail "qemu-img check found no errors in the dirty image"
check "$img" 0 -r leaks
qcheck "$img" 0
expect_eq "$(raw_sha "$img")" "$before" "data after the rebuild"

# persistent bitmaps own clusters: counted, so no leaks
img=$T/bitmaps.qcow2
qemu-img create -q -f qcow2 "$img" 16M
qemu-img bitmap --add "$img" b0
qemu-io -c 'write -P 1 0 1M' "$img" >/dev/null
qemu-img bitmap --add "$img" b1
qemu-img info "$img" | grep -q 'name: b1' || fail "no bitmap"
qcheck "$img" 0
check "$img" 0

# a refcount table entry beyond the end of the file: corruption, -r all
# rebuilds the refcount structure (qemu-img itself cannot repair this one)
img=$T/reftable.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512 "$img" 16M
qemu-io -c 'write -P 1 0 1M' "$img" >/dev/null
before=$(raw_sha "$img")
python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
rt = struct.unpack('>Q', f.read(56)[48:56])[0]
f.seek(rt + 8)
f.write(struct.pack('>Q', 1 << 40))
PY
qcheck "$img" 2
check "$img" 2
check "$img" 0 -r all
qcheck "$img" 0
check "$img" 0
expect_eq "$(raw_sha "$img")" "$before" "data after the refcount rebuild"

# random byte damage in the first clusters and anywhere (fixed seeds): the
# verdict agrees with qemu-img check before and after -r all, and never a
# crash or a hang
img0=$T/fuzz0.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k "$img0" 4M
qemu-io -c 'write -P 1 0 1M' "$img0" >/dev/null
qemu-img convert -c -O qcow2 -o cluster_size=4k "$img0" "$T/fuzz1.qcow2"
qemu-img snapshot -c a "$T/fuzz1.qcow2"
qemu-io -c 'write -P 3 100k 8k' -c 'write -P 4 2M 64k' "$T/fuzz1.qcow2" >/dev/null
for seed in $(seq 800 839); do
    img=$T/fuzz.qcow2
    cp "$T/fuzz1.qcow2" "$img"
    python3 - "$img" "$seed" <<'PY'
import os, random, sys
random.seed(int(sys.argv[2]))
sz = os.path.getsize(sys.argv[1])
with open(sys.argv[1], 'r+b') as f:
    for _ in range(3):
        f.seek(random.choice([random.randrange(0, min(sz, 65536)),
                              random.randrange(0, sz)]))
        f.write(bytes([random.randrange(256)]))
PY
    q=0; qemu-img check "$img" >/dev/null 2>&1 || q=$?
    check "$img" "$q"
    r=0; timeout 30 "$IMGFUSE" check -r all "$img" >"$T/out" 2>&1 || r=$?
    [ "$r" -lt 4 ] || fail "seed $seed: -r all exit $r: $(cat "$T/out")"
    qcheck "$img" "$r"
done

# compressed clusters packed into one host cluster: its refcount is the
# number of compressed clusters in it; too low is a corruption -r all fixes
python3 -c '
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(512):
        f.write(((b"block %06d " % i) * 373)[:4096])
' "$T/text2.raw"
img=$T/packed.qcow2
qemu-img convert -c -f raw -O qcow2 "$T/text2.raw" "$img"
qcheck "$img" 0
before=$(raw_sha "$img")
last=$(( ($(stat -c %s "$img") + 65535) / 65536 - 1 ))
[ "$(rc "$img" get "$last")" -gt 1 ] || fail "cluster $last holds no packed compressed data"
rc "$img" set "$last" 1
qcheck "$img" 2
check "$img" 2
check "$img" 0 -r all
qcheck "$img" 0
expect_eq "$(raw_sha "$img")" "$before" "compressed data after -r all"

# an external data file: data clusters are not counted in the image file
cd "$T"
qemu-img create -q -f qcow2 -o data_file=ext.raw ext.qcow2 16M
qemu-io -c 'write -P 1 0 1M' ext.qcow2 >/dev/null
qcheck ext.qcow2 0
check ext.qcow2 0
sz=$(stat -c %s ext.qcow2)
truncate -s $((sz + 65536)) ext.qcow2
rc ext.qcow2 set $((sz / 65536)) 1
qcheck ext.qcow2 3
check ext.qcow2 3
check ext.qcow2 0 -r leaks
qcheck ext.qcow2 0

# one L2 table named by every L1 entry: a corruption found without walking
# the table again and again; -r all keeps the first and drops the repeats
img=$T/dup.qcow2
qemu-img create -q -f qcow2 -o cluster_size=2M "$img" 8T
qemu-io -c 'write -P 1 0 1M' "$img" >/dev/null
python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(104)
l1, n = struct.unpack('>Q', h[40:48])[0], struct.unpack('>I', h[36:40])[0]
f.seek(l1)
e = f.read(8)
f.seek(l1)
f.write(e * n)
PY
qcheck "$img" 2
check "$img" 2
check "$img" 0 -r all
qcheck "$img" 0
qemu-io -c 'read -P 1 0 1M' "$img" | grep -q 'read 1048576' || fail "data lost"
