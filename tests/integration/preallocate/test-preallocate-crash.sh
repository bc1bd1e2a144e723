#!/bin/bash
# A crash with a preallocated tail: the daemon gets SIGKILL while the image
# file is 8M longer than its data. qemu-img then opens and checks the
# image as it does after QEMU's own preallocate filter dies (a zero tail
# after the last cluster is no error), the data written before the fsync
# is there, and a new mount with the filter writes on and unmounts to an
# image qemu-img checks clean.
. "$(dirname "$0")/../lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

qemu-img create -q -f qcow2 "$T/a.qcow2" 256M
pidf="$T/pid.$(echo "$T/m.raw" | md5sum | cut -c1-8)"
mount_img --preallocate=8M "$T/a.qcow2" "$T/m.raw"
pid=$(cat "$pidf")
[ "$pid" -gt 1 ] || fail "no daemon pid in $pidf"
python3 "$here/steps.py" "$T/a.qcow2" "$T/m.raw" kill "$pidf" >"$T/steps"
# steps.py killed it with the file open; take the dead mount down
crash_daemon "$pid" "$T/m.raw" 2>/dev/null || true
last=$(awk '$1 == "w4" {print $2}' "$T/steps")
expect_eq "$(stat -c %s "$T/a.qcow2")" "$last" "file length after the kill"
end=$(qemu-img check --output=json "$T/a.qcow2" 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["image-end-offset"])') ||
    fail "qemu-img check cannot read the image after the crash"
[ "$end" -lt "$last" ] || fail "no preallocated tail was left ($end >= $last)"
no_corruption "$T/a.qcow2" "after the kill"
qemu-img info "$T/a.qcow2" >/dev/null || fail "qemu-img info after the kill"
note "killed with a tail of $((last - end)) bytes past the image end $end: check clean"

# what was written before the fsync survived
qemu-io -f qcow2 -c "read -P 0xa1 0 1M" -c "read -P 0xa2 8M 2M" \
    -c "read -P 0xa3 40M 64K" "$T/a.qcow2" >"$T/io" || fail "qemu-io read"
grep -q "Pattern verification failed" "$T/io" && fail "fsynced data lost: $(cat "$T/io")"

# the next mount takes the tail as data (as QEMU does) and writes on
mount_img --preallocate=8M "$T/a.qcow2" "$T/m.raw"
python3 - "$T/m.raw" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"\xb6" * (1 << 20), 200 << 20)
assert os.pread(fd, 4096, 8 << 20) == b"\xa2" * 4096
os.close(fd)
PY
unmount_img "$T/m.raw"
qemu-img check -q "$T/a.qcow2" >/dev/null 2>&1 || rc=$?
[ "${rc:-0}" -eq 0 ] || [ "${rc:-0}" -eq 3 ] || fail "check after remount rc $rc"
qemu-io -f qcow2 -c "read -P 0xb6 200M 1M" -c "read -P 0xa1 0 1M" "$T/a.qcow2" \
    >"$T/io" || fail "qemu-io read after remount"
grep -q "Pattern verification failed" "$T/io" && fail "data lost: $(cat "$T/io")"
note "remounted, written and unmounted: qemu-img check rc ${rc:-0}, data intact"
