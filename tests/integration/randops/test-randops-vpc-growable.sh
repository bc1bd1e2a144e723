#!/bin/bash
# The random-operation tester on a --growable vpc mount: as
# test-randops-vpc.sh, plus writes and fallocate past the end; vpc grows and
# shrinks (sizes in sectors). qemu-img check is clean and convert equals the
# model after.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/randops-lib.sh"
qemu-img create -q -f vpc "$T/g.vpc" 8M
RANDOPS_EXTRA="--size-align 512" randops_run vpc "$T/g.vpc" growable
echo "ok"
