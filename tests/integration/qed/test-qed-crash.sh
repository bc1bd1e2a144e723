#!/bin/bash
# imgfuse-test: serial (kill -9 timing under load)
# Crash safety: writers with periodic fsync are running when the daemon gets
# SIGKILL, 8 times per image; after each kill qemu-img check finds no
# corruption (leaks allowed) and every write completed before an fsync is
# in the image (crash-rounds.py). The need-check flag set before the first
# table change makes the next read-write open check the image and cut the
# leaked clusters: after a last clean mount qemu-img check finds no leaks.
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

head -c 12M /dev/urandom >"$T/base.raw"
qemu-img create -q -f qed -o cluster_size=4K,table_size=2 "$T/a.qed" 12M
qemu-img create -q -f qed -o cluster_size=16K,table_size=2 -b "$T/base.raw" \
    -F raw "$T/b.qed" 12M
for img in a b; do
    _MOUNTS+=("$T/crash.raw")
    python3 "$here/../crash-rounds.py" "$IMGFUSE" "$T/$img.qed" "$T" 8 qed >"$T/log" ||
        fail "$img: $(tail -3 "$T/log")"
    note "$img: $(tail -1 "$T/log")"
    mount_img "$T/$img.qed" "$T/r.raw"
    unmount_img "$T/r.raw"
    qemu-img check -q "$T/$img.qed" || fail "$img: not clean after a read-write mount"
    note "$img: 8 kills, fsynced writes kept, clean after reopen"
done
