#!/bin/bash
# Writers in parallel through the preallocate filter with a small tail
# (1M: it is cut and fallocated again and again), each ending with an
# fsync while the others still write, then large random writes: qemu-img
# check finds the image clean and compare finds it equal to a shadow file
# given the same writes.
. "$(dirname "$0")/../lib.sh"

qemu-img create -q -f qcow2 "$T/s.qcow2" 64M
truncate -s 64M "$T/shadow"
mount_img --preallocate=1M "$T/s.qcow2" "$T/m.raw"
mirror_parallel_writes "$T/m.raw" "$T/shadow"
mirror_writes "$T/m.raw" "$T/shadow" 7 40
unmount_img "$T/m.raw"
oracle_agrees "$T/s.qcow2" qcow2 "$T/shadow" "parallel writers through the filter"
note "4 parallel writers and 40 large writes: clean and equal to the shadow"
