#!/bin/bash
# Bad input gives a clear message and a non-zero exit, quickly: malformed
# URL, nothing listening, a listener that never answers, wrong target name,
# missing lun, lun 0 (the controller), a write-protected lun without -r.
# A target that goes away under a mount: I/O fails with EIO within the
# timeout (no hang) and works again once the target is back (the driver
# logs in again, bounded by reconnect-retries). A target that stops
# answering: the read fails after the timeout, and then recovers.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/iscsi-lib.sh"

lun=$T/lun.img
head -c 8M /dev/urandom > "$lun"
tgt_start e
tgt_lun e "$lun"
port=$TGT_PORT

# bad SOURCE WHAT PATTERN: info fails within 10 s with PATTERN in the message
bad() {
    local start=$SECONDS
    if timeout 20 "$IMGFUSE" info "$1" > /dev/null 2> "$T/err"; then
        fail "$2: info succeeded"
    fi
    grep -q "$3" "$T/err" || fail "$2: unexpected message: $(cat "$T/err")"
    [ $((SECONDS - start)) -le 10 ] || fail "$2: took $((SECONDS - start)) s"
}

note "malformed URLs"
bad "iscsi://127.0.0.1:$port/$IQN" "no lun" "expected /target-iqn/lun"
bad "iscsi://127.0.0.1:$port/$IQN/x" "lun not a number" "lun 'x' is not a number"
bad "iscsi://127.0.0.1:$port/$IQN/1?header_digest=md5" "bad digest" "header digest 'md5'"
bad "iscsi://127.0.0.1:$port/$IQN/1?bogus=1" "unknown key" "unknown query key 'bogus'"

note "wrong portal, target, lun"
dead=$(free_port)
bad "iscsi://127.0.0.1:$dead/$IQN/1" "nothing listening" "connection refused; is the iSCSI target running"
bad "iscsi://no-such-host.invalid/$IQN/1" "unknown host" "cannot resolve 'no-such-host.invalid'"
bad "iscsi://127.0.0.1:$port/${IQN}x/1" "wrong target" "no target '${IQN}x'"
bad "iscsi://127.0.0.1:$port/$IQN/7" "missing lun" "has no lun 7"
bad "iscsi://127.0.0.1:$port/$IQN/0" "controller lun" "lun 0 is not a disk"

note "a listener that never answers the login: timeout"
silent=$(free_port)
python3 -c 'import socket,sys,time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
print(flush=True); time.sleep(15)' "$silent" > "$T/silent.out" &
lpid=$!
for i in $(seq 1 100); do [ -s "$T/silent.out" ] && break; sleep 0.05; done
bad "iscsi://127.0.0.1:$silent/$IQN/1?timeout=1" "silent listener" "no answer to the login within 1 s"
kill "$lpid" 2>/dev/null || true

note "a write-protected lun needs -r"
truncate -s 1M "$T/ro.img"
_MOUNTS+=("$T/ro")
tgt e --op new --mode logicalunit --tid 1 --lun 2 -b "$T/ro.img"
tgt e --op update --mode logicalunit --tid 1 --lun 2 --params readonly=1
if "$IMGFUSE" -F raw "iscsi://127.0.0.1:$port/$IQN/2" "$T/ro" 2> "$T/err"; then
    fail "a write-protected lun was mounted read-write"
fi
grep -q "the lun is write-protected; mount with -r" "$T/err" || fail "message: $(cat "$T/err")"
mount_img -r -F raw "iscsi://127.0.0.1:$port/$IQN/2" "$T/ro"
expect_eq "$(stat -c %s "$T/ro")" 1048576 "write-protected lun size"
unmount_img "$T/ro"
bad "iscsi://127.0.0.1:$port/$IQN/1?timeout=0" "timeout 0" "timeout '0' is not a number from 1"

note "target goes away under a mount: EIO, no hang"
url="iscsi://127.0.0.1:$port/$IQN/1?timeout=2&reconnect-retries=1"
mount_img -F raw "$url" "$T/m"
cmp "$T/m" "$lun" || fail "content differs before the outage"
tgt_stop e
start=$SECONDS
if dd if="$T/m" of=/dev/null bs=64k skip=3 count=1 iflag=direct status=none 2> "$T/err"; then
    fail "a read with the target down succeeded"
fi
[ $((SECONDS - start)) -le 20 ] || fail "the failing read took $((SECONDS - start)) s"
grep -qi "input/output error" "$T/err" || fail "expected EIO, got: $(cat "$T/err")"
is_mounted "$T/m" || fail "the mount went away with the target"

note "target back on the same portal: the mount works again"
tgt_start e "$port"
tgt_lun e "$lun"
ok=0
for i in $(seq 1 20); do
    if dd if="$T/m" of="$T/back" bs=64k count=4 iflag=direct status=none 2>/dev/null; then
        ok=1; break
    fi
    sleep 0.5
done
[ $ok = 1 ] || fail "reads still fail after the target came back"
cmp "$T/back" <(head -c 256k "$lun") || fail "content differs after reconnecting"
head -c 64k /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/m" bs=64k seek=9 conv=notrunc,fsync status=none ||
    fail "a write after reconnecting failed"
cmp <(dd if="$lun" bs=64k skip=9 count=1 status=none) "$T/pat" || fail "write after reconnect"

note "target hangs: a read fails within bounds, then works when it wakes"
pid=$(cat "$ISCSI_S/e/pid")
kill -STOP "$pid"
start=$SECONDS
if timeout 60 dd if="$T/m" of=/dev/null bs=64k skip=11 count=1 iflag=direct status=none 2> "$T/err"; then
    kill -CONT "$pid"
    fail "a read from a stopped target succeeded"
fi
kill -CONT "$pid"
[ $((SECONDS - start)) -le 30 ] || fail "the failing read took $((SECONDS - start)) s"
grep -qiE "input/output error|timed out" "$T/err" || fail "expected EIO or ETIMEDOUT: $(cat "$T/err")"
dd if="$T/m" of="$T/back" bs=64k skip=9 count=1 iflag=direct status=none ||
    fail "reads still fail after the target woke up"
cmp "$T/back" "$T/pat" || fail "content differs after the target woke up"
unmount_img "$T/m"
echo ok
