#!/bin/bash
# Crash safety of qcow: writers with periodic fsync are running when the
# daemon gets SIGKILL, 4 times; after each kill qemu-img check finds no
# corruption (leaks allowed, where qemu-img has a check for qcow) and every
# write completed before an fsync is in the image (../crash-rounds.py).
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

qemu-img create -q -f qcow  "$T/a.qcow" 8M
_MOUNTS+=("$T/crash.raw")
python3 "$here/../crash-rounds.py" "$IMGFUSE" "$T/a.qcow" "$T" 4 qcow >"$T/log" ||
    fail "$(tail -3 "$T/log")"
note "$(tail -1 "$T/log")"
echo "ok"
