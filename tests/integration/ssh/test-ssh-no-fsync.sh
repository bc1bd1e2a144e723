#!/bin/bash
# A server without the fsync@openssh.com extension: info says so, writes
# and fsync still succeed (as in QEMU: flushes cannot be honoured, which a
# single warning says), and the data reaches the server.
. "$(dirname "$0")/../lib.sh"
SSH_SFTP_SUBSYSTEM="/usr/bin/python3 $(cd "$(dirname "$0")" && pwd)/nofsync-sftp.py"
. "$(dirname "$0")/ssh-lib.sh"

start_sshd
start_agent
qemu-img create -q -f raw "$SSH_S/d.img" 4M
uri=$(ssh_uri "$SSH_S/d.img")

"$IMGFUSE" info -F raw "$uri" > "$T/info" || fail "info fails"
grep -q "fsync: not supported by the server" "$T/info" ||
    fail "info does not say fsync is missing: $(cat "$T/info")"

# in the foreground, so the warning comes to our stderr
touch "$T/m"
_MOUNTS+=("$T/m")
"$IMGFUSE" -f -F raw "$uri" "$T/m" 2> "$T/log" &
fg=$!
for i in $(seq 1 100); do is_mounted "$T/m" && break; sleep 0.05; done
is_mounted "$T/m" || fail "foreground mount did not come up: $(cat "$T/log")"
head -c 1048576 /dev/urandom > "$T/rand"
dd if="$T/rand" of="$T/m" bs=64k seek=4 conv=notrunc,fsync status=none ||
    fail "write+fsync fails on a server without fsync"
dd if="$T/rand" of="$T/m" bs=64k seek=40 count=1 conv=notrunc,fsync status=none ||
    fail "second fsync fails"
fusermount3 -u "$T/m"
wait $fg || fail "imgfuse exited with an error: $(cat "$T/log")"
expect_eq "$(grep -c "ssh server 127.0.0.1:$SSH_PORT does not support fsync" "$T/log")" 1 \
    "warnings about the missing fsync"
cmp -n 1048576 -i 0:262144 "$T/rand" "$SSH_S/d.img" || fail "written data not on the server"
echo OK
