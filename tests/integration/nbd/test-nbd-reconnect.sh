#!/bin/bash
# A server that restarts under a live mount: the next request reconnects
# and succeeds; a server that stays down gives EIO quickly (no hang), and
# the mount recovers once the server is back; a server that hangs gives
# ETIMEDOUT after the I/O timeout, and the mount recovers when it wakes.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nbd-lib.sh"

img=$T/disk.raw
truncate -s 8M "$img"
sock=$NBD_S/r.sock
start_qemu_nbd r -k "$sock" -f raw "$img"
mount_img -F raw "nbd+unix:///?socket=$sock&timeout=2&connect-timeout=2&reconnect-retries=2" "$T/m"

write_via_mount() {   # PATTERN-BYTE OFFSET-IN-64K-BLOCKS
    head -c 65536 /dev/zero | tr '\0' "$1" |
        dd of="$T/m" bs=64k seek="$2" conv=notrunc,fsync status=none
}
expect_on_server() {  # PATTERN OFFSET
    qemu-io -r -U -f raw -c "read -P $1 $2 64k" "$img" > /dev/null ||
        fail "the image lacks pattern $1 at $2"
}

note "before any trouble"
write_via_mount '\001' 1
expect_on_server 1 64k

note "server restarted while the mount is idle"
nbd_stop r
start_qemu_nbd r -k "$sock" -f raw "$img"
write_via_mount '\002' 2
expect_on_server 2 128k

note "server down: i/o fails with EIO, quickly"
nbd_stop r
start=$(date +%s)
if write_via_mount '\003' 3 2> "$T/err"; then
    fail "a write with the server down reported success"
fi
[ $(( $(date +%s) - start )) -le 15 ] || fail "the failing write took more than 15 s"
grep -qi "input/output error" "$T/err" || fail "expected EIO, got: $(cat "$T/err")"
is_mounted "$T/m" || fail "the mount went away with the server"

note "server back: the mount works again"
start_qemu_nbd r -k "$sock" -f raw "$img"
write_via_mount '\004' 4
expect_on_server 4 256k
# The kernel retries a failed readahead with a plain read, so the program
# sees the second failure (EIO after one bounded reconnect attempt).
note "server hangs: a read fails after the timeout, within bounds"
pid=$(cat "$NBD_S/r.pid")
kill -STOP "$pid"
start=$(date +%s)
if dd if="$T/m" of=/dev/null bs=64k skip=77 count=1 iflag=direct status=none 2> "$T/err"; then
    kill -CONT "$pid"
    fail "a read from a stopped server succeeded"
fi
kill -CONT "$pid"
[ $(( $(date +%s) - start )) -le 8 ] || fail "the read took more than 8 s to fail"
grep -qiE "timed out|input/output error" "$T/err" ||
    fail "expected ETIMEDOUT or EIO, got: $(cat "$T/err")"
write_via_mount '\005' 5
expect_on_server 5 320k

unmount_img "$T/m"
echo OK
