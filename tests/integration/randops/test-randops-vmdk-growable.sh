#!/bin/bash
# The random-operation tester on a --growable vmdk mount: as
# test-randops-vmdk.sh, plus writes and fallocate past the end; vmdk
# monolithicSparse only grows (sizes in sectors): no truncate. qemu-img
# check is clean and convert equals the model after.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/randops-lib.sh"
qemu-img create -q -f vmdk "$T/g.vmdk" 8M
RANDOPS_EXTRA="--no truncate --size-align 512" randops_run vmdk "$T/g.vmdk" growable
echo "ok"
