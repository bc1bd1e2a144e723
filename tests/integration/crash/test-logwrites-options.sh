#!/bin/bash
# The logwrites filter refuses what it cannot log to: no log= option, and
# a log= file that is not one of its logs (which it would otherwise append
# to). A log is appended to across mounts: a second mount's records follow
# the first's, and the whole log still replays to the image.
. "$(dirname "$0")/../lib.sh"

qemu-img create -q -f qcow2 "$T/a.qcow2" 1M
cp "$T/a.qcow2" "$T/initial"
touch "$T/m.raw"
out=$("$IMGFUSE" "driver=qcow2,file.driver=logwrites,file.filename=$T/a.qcow2" \
      "$T/m.raw" 2>&1) && fail "mounted without log="
echo "$out" | grep -q "needs log=FILE" || fail "no log=: unclear error: $out"
echo "not a log, but long enough" >"$T/notlog"
out=$("$IMGFUSE" "driver=qcow2,file.driver=logwrites,file.log=$T/notlog,file.filename=$T/a.qcow2" \
      "$T/m.raw" 2>&1) && fail "mounted with a log= that is not a log"
echo "$out" | grep -q "not a logwrites log" || fail "bad log: unclear error: $out"
expect_eq "$(cat "$T/notlog")" "not a log, but long enough" "the foreign file"

src="driver=qcow2,file.driver=logwrites,file.log=$T/log,file.filename=$T/a.qcow2"
for pat in 0xa1 0xb2; do
    mount_img "$src" "$T/m.raw"
    python3 -c "import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); \
os.pwrite(fd, bytes([$pat]) * 70000, 5000); os.fsync(fd)" "$T/m.raw"
    unmount_img "$T/m.raw"
done
mkdir "$T/replay"
python3 "$ROOT/tests/tools/replay-writes.py" -f qcow2 --random 0 "$T/initial" \
    "$T/log" "$T/a.qcow2" "$T/replay" >"$T/out" 2>&1 || fail "$(tail -3 "$T/out")"
qemu-io -f qcow2 -c "read -P 0xb2 5000 70000" "$T/a.qcow2" | grep -q "verification failed" &&
    fail "the second mount's data is not there"
note "two mounts, one log: $(tail -1 "$T/out")"
echo "ok"
