#!/bin/bash
# The random-operation tester (tests/tools/randops.c) on a mounted raw image:
# reads, writes, mmap, O_DIRECT, fallocate modes, copy_file_range, reopen
# and a remount half way, each read checked against the model; then
# qemu-img check is clean and qemu-img convert equals the model.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/randops-lib.sh"
truncate -s 8M "$T/a.raw"
randops_run raw "$T/a.raw" fixed
truncate -s 8M "$T/b.raw"
randops_run raw "$T/b.raw" growable
echo "ok"
