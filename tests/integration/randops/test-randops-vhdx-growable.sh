#!/bin/bash
# The random-operation tester on a --growable vhdx mount: as
# test-randops-vhdx.sh, plus writes and fallocate past the end; vhdx grows
# and shrinks (sizes in sectors). qemu-img check is clean and convert equals
# the model after.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/randops-lib.sh"
qemu-img create -q -f vhdx -o block_size=1M "$T/g.vhdx" 8M
RANDOPS_EXTRA="--size-align 512" randops_run vhdx "$T/g.vhdx" growable
echo "ok"
