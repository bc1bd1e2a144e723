#!/bin/bash
# A server that restarts under a live mount: the next request reconnects
# and succeeds; a server that stays down gives EIO quickly (no hang), and
# the mount recovers once the server is back; a server that hangs gives
# ETIMEDOUT after the I/O timeout, and the mount recovers when it wakes;
# a server that restarts without the writes it had not flushed gets them
# replayed (or, with replay-buffer=0, fsync reports EIO).
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
[ $(( $(date +%s) - start )) -le 12 ] || fail "the read took more than 12 s to fail"
grep -qiE "timed out|input/output error" "$T/err" ||
    fail "expected ETIMEDOUT or EIO, got: $(cat "$T/err")"
write_via_mount '\005' 5
expect_on_server 5 320k

# lose_unflushed MOUNT BYTE BLOCK: write BYTE at BLOCK (64 KiB units) with
# O_DIRECT and no fsync, restart the server from the image as it was at the
# last fsync (a server that lost its cache), then fsync; prints fsync's
# outcome ("ok" or the errno name). The writer must not fork while its
# descriptor is open: every close, even an exec's, makes FUSE flush.
lose_unflushed() {
    local pid
    cp "$img" "$T/flushed.raw"
    rm -f "$T/go" "$T/done"
    mkfifo "$T/go" "$T/done"
    python3 - "$1" "$2" "$3" "$T/go" "$T/done" > "$T/lose.out" <<'PY' &
import errno, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 65536)
buf.write(bytes([int(sys.argv[2])]) * 65536)
os.pwrite(fd, buf, int(sys.argv[3]) * 65536)
open(sys.argv[4], "w").close()          # written: restart the server
open(sys.argv[5]).read()                # restarted
try:
    os.fsync(fd)
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
os.close(fd)
PY
    local py=$!
    cat "$T/go" > /dev/null
    pid=$(cat "$NBD_S/r.pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    cp "$T/flushed.raw" "$img"
    start_qemu_nbd r -k "$sock" -f raw "$img"
    echo > "$T/done"
    wait $py
    cat "$T/lose.out"
}

note "server restarts without its unflushed writes: they are replayed"
write_via_mount '\006' 6
expect_eq "$(lose_unflushed "$T/m" 7 7)" ok "fsync after the replay"
expect_on_server 6 384k
expect_on_server 7 448k
unmount_img "$T/m"

note "the same with replay-buffer=0: fsync reports EIO"
mount_img -F raw "nbd+unix:///?socket=$sock&timeout=2&connect-timeout=2&replay-buffer=0" "$T/m0"
write_via_m0() { head -c 65536 /dev/zero | tr '\0' "$1" |
    dd of="$T/m0" bs=64k seek="$2" conv=notrunc,fsync status=none; }
write_via_m0 '\010' 8
expect_eq "$(lose_unflushed "$T/m0" 9 9)" EIO "fsync after losing unflushed writes"
write_via_m0 '\012' 10
expect_on_server 10 640k
unmount_img "$T/m0"
echo OK
