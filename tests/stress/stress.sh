#!/bin/bash
# The load test of issue 15, run when asked (not part of the suite):
#   bash tests/stress/stress.sh [SECONDS (60)] [PROCS (8)]
# 8 writers on a read-write qcow2 mount, 8 readers on a read-only one, and
# qemu-img -U reading their backing file, for 60 s; then the content, the
# image's check and the daemons' RSS over time (tests/stress/stress.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
IMGFUSE=${IMGFUSE:-$root/build/imgfuse}
T=$(mktemp -d /var/tmp/imgfuse-stress.XXXXXX)
trap 'fusermount3 -u "$T/a.raw" 2>/dev/null; fusermount3 -u "$T/b.raw" 2>/dev/null; rm -rf "$T"' EXIT
/usr/bin/python3 "$root/tests/stress/stress.py" "$IMGFUSE" "$T" "${1:-60}" "${2:-8}"
