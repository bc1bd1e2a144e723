#!/bin/bash
# The random-operation tester on a --growable qed mount: as
# test-randops-qed.sh, plus writes and fallocate past the end; qed only
# grows (sizes in sectors), as QEMU's qed: no truncate. qemu-img check is
# clean and convert equals the model after.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/randops-lib.sh"
qemu-img create -q -f qed "$T/g.qed" 8M
RANDOPS_EXTRA="--no truncate --size-align 512" randops_run qed "$T/g.qed" growable
echo "ok"
