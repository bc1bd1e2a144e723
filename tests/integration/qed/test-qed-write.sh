#!/bin/bash
# Writes through the mount: random writes, punched holes (discard) and
# zeroed ranges from several threads, mirrored into a raw shadow, leave
# images (with and without a backing file) that qemu-img check finds clean
# and qemu-img compare finds equal to the shadow; writers racing for the
# same clusters; the need-check flag is clear after unmount; imgfuse create
# makes what qemu-img create makes and refuses options outside the spec.
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

# qemu 7.2's check counts one leak in any qed file of more than 4096
# clusters (its own images too): the images here stay below that
flag_clear() {
    [ $(( $(od -An -tu1 -j16 -N1 "$1") & 2 )) -eq 0 ] ||
        fail "$2: need-check flag left set"
}

head -c 16M /dev/urandom >"$T/base.raw"
qemu-img create -q -f qed -o cluster_size=64K "$T/plain.qed" 16M
qemu-img create -q -f qed -o cluster_size=4K,table_size=2 -b "$T/base.raw" \
    -F raw "$T/over.qed" 12M
for name in plain over; do
    img=$T/$name.qed
    qemu-img convert -f qed -O raw "$img" "$T/$name.shadow"
    mount_img "$img" "$T/mnt-$name"
    python3 "$here/../qcow2/shadow-writer.py" "$T/mnt-$name" "$T/$name.shadow" 3 60 \
        4 20 || fail "$name: writer failed"
    unmount_img "$T/mnt-$name"
    flag_clear "$img" "$name"
    oracle_agrees "$img" qed "$T/$name.shadow" "$name"
    "$IMGFUSE" check "$img" >/dev/null || fail "$name: imgfuse check"
    note "$name: writes, discards and zeroes match the shadow, clean"
done

# writers racing to allocate the same clusters
qemu-img create -q -f qed -o cluster_size=64K,table_size=2 "$T/par.qed" 12M
qemu-img convert -f qed -O raw "$T/par.qed" "$T/par.shadow"
mount_img "$T/par.qed" "$T/mnt-par"
mirror_parallel_writes "$T/mnt-par" "$T/par.shadow" || fail "parallel writers failed"
unmount_img "$T/mnt-par"
oracle_agrees "$T/par.qed" qed "$T/par.shadow" "parallel writes"
note "parallel: ok"

# zero writes over a backing become zero clusters, allocating no data
qemu-img create -q -f qed -o cluster_size=64K -b "$T/base.raw" -F raw "$T/z.qed" 16M
before=$(stat -c %s "$T/z.qed")
mount_img "$T/z.qed" "$T/mnt-z"
fallocate -z -o 1M -l 2M "$T/mnt-z"
unmount_img "$T/mnt-z"
# one new L2 table (4 clusters of 64K), no data cluster
expect_eq "$(stat -c %s "$T/z.qed")" $((before + 262144)) "zeroes over a backing: file size"
qemu-img map --output=json "$T/z.qed" | grep -q '"start": 1048576, "length": 2097152, "depth": 0, "present": true, "zero": true' ||
    fail "zeroes over a backing: not zero clusters: $(qemu-img map --output=json "$T/z.qed")"
cp "$T/base.raw" "$T/z.shadow"
fallocate -z -o 1M -l 2M "$T/z.shadow" 2>/dev/null ||
    dd if=/dev/zero of="$T/z.shadow" bs=1M seek=1 count=2 conv=notrunc status=none
oracle_agrees "$T/z.qed" qed "$T/z.shadow" "zeroes over a backing"
note "zero clusters: ok"

# create: the same file as qemu-img create, with a backing file too
for opts in "" cluster_size=4K,table_size=2 cluster_size=16K,table_size=16 \
        "backing_file=$T/base.raw,backing_fmt=raw"; do
    rm -f "$T/ours.qed" "$T/theirs.qed"
    "$IMGFUSE" create -F qed ${opts:+-o "$opts"} "$T/ours.qed" 20M >/dev/null
    qemu-img create -q -f qed ${opts:+-o "$opts"} "$T/theirs.qed" 20M
    cmp -s "$T/ours.qed" "$T/theirs.qed" ||
        fail "create '$opts': differs from qemu-img create: $(cmp "$T/ours.qed" "$T/theirs.qed")"
    qemu-img check -q "$T/ours.qed" || fail "create '$opts': qemu-img check"
done
qemu-img info "$T/ours.qed" | grep -q "^backing file format: raw" ||
    fail "create: backing_fmt=raw not recorded"
note "create: same bytes as qemu-img create"

for bad in cluster_size=2K cluster_size=128K cluster_size=24K table_size=0 \
        table_size=32 table_size=6; do
    expect_fail_within 20 "$IMGFUSE" create -F qed -o "$bad" "$T/bad.qed" 1M
    expect_err "not a power of 2"
    [ ! -e "$T/bad.qed" ] || fail "create $bad left a file"
done
note "create: bad options refused"

# cp into a fresh mount made by --create
head -c 3M /dev/urandom >"$T/src.raw"
truncate -s 9M "$T/src.raw"
mount_img --create 9M -F qed "$T/new.qed" "$T/new.raw"
cp "$T/src.raw" "$T/new.raw"
unmount_img "$T/new.raw"
oracle_agrees "$T/new.qed" qed "$T/src.raw" "cp into a new image"
note "cp into --create: ok"
