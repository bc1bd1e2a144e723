#!/bin/bash
# The random-operation tester on a --growable qcow2 mount: as
# test-randops-qcow2.sh, plus writes and fallocate past the end; qcow2 grows
# and shrinks over data (sizes in sectors, as QEMU reads them). qemu-img
# check is clean and convert equals the model after.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/randops-lib.sh"
qemu-img create -q -f qcow2 -o cluster_size=65536 "$T/g.qcow2" 8M
RANDOPS_EXTRA="--size-align 512" randops_run qcow2 "$T/g.qcow2" growable
echo "ok"
