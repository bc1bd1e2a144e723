#!/bin/bash
# Crash points of vpc beyond kill -9: the image rebuilt from the logwrites
# filter's log at every flush and at random points between flushes opens,
# checks clean (leaks allowed) and holds every write fsync'd before the
# last flush it has (replay-lib.sh, tests/tools/replay-writes.py).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/replay-lib.sh"

replay_test vpc 4M 200 1 1
echo "ok"
