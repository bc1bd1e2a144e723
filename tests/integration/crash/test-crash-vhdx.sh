#!/bin/bash
# Crash safety of vhdx: writers with periodic fsync are running when the
# daemon gets SIGKILL, 4 times; after each kill qemu-img check finds no
# corruption (leaks allowed, where qemu-img has a check for vhdx) and every
# write completed before an fsync is in the image (../crash-rounds.py).
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

qemu-img create -q -f vhdx -o block_size=1M "$T/a.vhdx" 8M
_MOUNTS+=("$T/crash.raw")
python3 "$here/../crash-rounds.py" "$IMGFUSE" "$T/a.vhdx" "$T" 4 vhdx >"$T/log" ||
    fail "$(tail -3 "$T/log")"
note "$(tail -1 "$T/log")"
echo "ok"
