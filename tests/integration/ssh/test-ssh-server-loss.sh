#!/bin/bash
# A server that stops answering mid-mount (SIGSTOP) makes reads and writes
# fail with EIO after the I/O timeout, not hang; one whose session dies
# fails them at once. Either way the mount still unmounts cleanly and
# nothing already written is lost.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/ssh-lib.sh"

start_sshd
start_agent
qemu-img create -q -f raw "$SSH_S/d.img" 16M
qemu-io -f raw -c 'write -P 0x77 0 16M' "$SSH_S/d.img" > /dev/null

# read_fails_within SECS MOUNT SKIP_MIB: a 1 MiB read at SKIP_MIB fails with
# an i/o error within SECS.
read_fails_within() {
    local secs=$1 m=$2 skip=$3 start end
    start=$(date +%s.%N)
    if timeout 30 dd if="$m" of=/dev/null bs=1M skip="$skip" count=1 \
            status=none 2> "$T/err"; then
        fail "a read from a dead server succeeded"
    fi
    end=$(date +%s.%N)
    grep -q "Input/output error" "$T/err" || fail "expected EIO, got: $(cat "$T/err")"
    python3 -c "import sys; sys.exit(0 if $end - $start <= $secs else 1)" ||
        fail "the failing read took more than $secs s"
}

note "server stops answering: EIO after the 2 s timeout"
mount_img -F raw "$(ssh_uri "$SSH_S/d.img" timeout=2)" "$T/m"
dd if=/dev/urandom of="$T/m" bs=64k count=4 seek=8 conv=notrunc,fsync status=none
cp "$SSH_S/d.img" "$T/before"
cmp -n 4194304 "$T/m" "$T/before" || fail "mount differs before the freeze"
ssh_freeze_sessions
read_fails_within 8 "$T/m" 10
read_fails_within 2 "$T/m" 12     # the connection is known dead: at once
if timeout 30 dd if=/dev/zero of="$T/m" bs=4k count=1 seek=3000 \
        conv=notrunc,fsync status=none 2>/dev/null; then
    fail "a write to a dead server succeeded"
fi
unmount_img "$T/m"
cmp "$T/before" "$SSH_S/d.img" ||
    fail "data written before the freeze is not on the server"

note "server session dies: EIO at once"
mount_img -F raw "$(ssh_uri "$SSH_S/d.img")" "$T/m2"
dd if="$T/m2" of=/dev/null bs=1M count=1 status=none
ssh_kill_sessions
read_fails_within 3 "$T/m2" 6
unmount_img "$T/m2"
echo OK
