#!/bin/bash
# Crash points of vdi beyond kill -9: the image rebuilt from the logwrites
# filter's log at every flush and at random points between flushes opens,
# checks clean (leaks allowed) and holds every write fsync'd before the
# last flush it has (replay-lib.sh, tests/tools/replay-writes.py).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/replay-lib.sh"

# KNOWN BUG (issue 15, crash points; a limit of the format): the header's
# count of allocated blocks and the block map are in different sectors, so
# no write order keeps them equal across a power cut. The driver counts a
# block in the header and flushes before the map points at it, so a crash
# leaves at worst a counted block nothing points at (a leak), which
# qemu-img check still calls "allocated blocks mismatch, is N, should be
# M" with N < M (rc 2); the other direction (a block QEMU would hand out
# twice) stays a failure.
KNOWN_BUG='allocated blocks mismatch, is (?P<lo>[0-9]+), should be (?P<hi>[0-9]+)' \
replay_test vdi 4M 200 1 1
echo "ok"
