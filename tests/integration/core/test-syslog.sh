#!/bin/bash
# Once detached, the daemon's errors go to syslog with the mountpoint and
# the image in the message; with -d they stay on the terminal. The test's
# own /dev/log (a datagram socket in a private /dev of a mount namespace
# of its own) stands in for the journal.
. "$(dirname "$0")/../lib.sh"

# a qcow2 whose first L2 entry is misaligned: reading it is an EIO
img=$T/bad.qcow2
qemu-img create -q -f qcow2 "$img" 8M
qemu-io -f qcow2 -c 'write -P 0x61 0 64k' "$img" >/dev/null
python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); h = f.read(104)
l1 = struct.unpack('>Q', h[40:48])[0]
f.seek(l1); l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2); f.write(struct.pack('>Q', 0x8000000000000000 | 0x12345200))
PY
cat > "$T/syslogd.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".bound", "w").close()
s.settimeout(0.5)
end = time.time() + 15
with open(sys.argv[1], "w") as out:
    while time.time() < end:
        try:
            msg = s.recv(8192).decode(errors="replace")
        except socket.timeout:
            continue
        out.write(msg + "\n"); out.flush()
        if "read of" in msg:
            break
PY

unshare -m --propagation private bash -c '
    set -e
    mount -t tmpfs imgfuse-test-dev /dev
    mknod -m 666 /dev/fuse c 10 229
    mknod -m 666 /dev/null c 1 3
    python3 "$1" "$2" & lp=$!
    for i in $(seq 1 100); do [ -e "$2.bound" ] && break; sleep 0.05; done
    "$3" -r "$4" "$5/mnt.raw"
    head -c 10 "$5/mnt.raw" >/dev/null 2>&1 && echo "read did not fail"
    wait $lp || true
    umount "$5/mnt.raw"
' _ "$T/syslogd.py" "$T/log" "$IMGFUSE" "$img" "$T" >"$T/ns.out" 2>&1 || fail "namespace run: $(cat "$T/ns.out")"
# the stat that tells the mount is live meets the bad entry first: that
# error reaches the terminal (the parent still waits); the read's, later,
# must not
grep -v "corrupt image" "$T/ns.out" && fail "after detaching, on stderr: $(cat "$T/ns.out")"
grep -q "read of" "$T/log" || fail "no read error in syslog: $(cat "$T/log")"
line=$(grep "read of" "$T/log" | head -1)
case $line in
    "<27>"*) ;;         # LOG_DAEMON (3 << 3) | LOG_ERR (3)
    *) fail "syslog priority: $line" ;;
esac
echo "$line" | grep -q "imgfuse\[[0-9]*\]: $T/mnt.raw ($img): error: " \
    || fail "message lacks the mountpoint and image: $line"

# -d: the same errors stay on stderr, with debug output
touch "$T/f.raw"
_MOUNTS+=("$T/f.raw")
"$IMGFUSE" -d -r "$img" "$T/f.raw" 2>"$T/d.err" &
dpid=$!
for i in $(seq 1 100); do is_mounted "$T/f.raw" && break; sleep 0.05; done
is_mounted "$T/f.raw" || fail "-d mount: $(tail -3 "$T/d.err")"
head -c 10 "$T/f.raw" >/dev/null 2>&1 && fail "read of the bad cluster worked"
fusermount3 -u "$T/f.raw"
wait "$dpid" || true
grep -q "error: $img: corrupt image" "$T/d.err" || fail "-d: no error on stderr"
grep -q "unique:" "$T/d.err" || fail "-d: no FUSE debug output"
echo ok
