#!/bin/bash
# Crash safety of vdi: writers with periodic fsync are running when the
# daemon gets SIGKILL, 4 times; after each kill qemu-img check finds no
# corruption (leaks allowed, where qemu-img has a check for vdi) and every
# write completed before an fsync is in the image (../crash-rounds.py).
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

qemu-img create -q -f vdi  "$T/a.vdi" 8M
_MOUNTS+=("$T/crash.raw")
python3 "$here/../crash-rounds.py" "$IMGFUSE" "$T/a.vdi" "$T" 4 vdi >"$T/log" ||
    fail "$(tail -3 "$T/log")"
note "$(tail -1 "$T/log")"
echo "ok"
