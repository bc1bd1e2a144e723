#!/bin/bash
# The random-operation tester (tests/tools/randops.c) on a mounted vmdk image:
# reads, writes, mmap, O_DIRECT, fallocate modes, copy_file_range, reopen
# and a remount half way, each read checked against the model; then
# qemu-img check is clean and qemu-img convert equals the model.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/randops-lib.sh"
qemu-img create -q -f vmdk "$T/a.vmdk" 8M
randops_run vmdk "$T/a.vmdk" fixed
echo "ok"
