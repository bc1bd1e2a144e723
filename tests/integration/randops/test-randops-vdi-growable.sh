#!/bin/bash
# The random-operation tester on a --growable vdi mount: as
# test-randops-vdi.sh, plus writes and fallocate past the end; vdi grows
# (sizes in sectors); it shrinks only over unallocated blocks, so no
# truncate. qemu-img check is clean and convert equals the model after.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/randops-lib.sh"
qemu-img create -q -f vdi "$T/g.vdi" 8M
RANDOPS_EXTRA="--no truncate --size-align 512" randops_run vdi "$T/g.vdi" growable
echo "ok"
