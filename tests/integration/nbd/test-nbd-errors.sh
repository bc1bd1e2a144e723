#!/bin/bash
# Bad input gets a clear message quickly: refused port, missing socket,
# wrong export name, a server that never answers (connect timeout), a
# malformed URI, and a read-only export mounted read-write.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/nbd-lib.sh"

note "connection refused"
dead=$(free_port)
expect_fail_within 10 "$IMGFUSE" info "nbd://127.0.0.1:$dead/x"
expect_err "nbd://127.0.0.1:$dead/x: connection refused; is the NBD server running?"
expect_fail_within 10 "$IMGFUSE" -r "nbd://127.0.0.1:$dead/x" "$T/never"
expect_err "connection refused"
! is_mounted "$T/never" || fail "a failed mount left a mount behind"

note "missing unix socket"
expect_fail_within 10 "$IMGFUSE" info "nbd+unix:///?socket=$NBD_S/none.sock"
expect_err "is the NBD server running?"

note "wrong export name"
start_nbdkit strict -U "$NBD_S/s.sock" --filter=exportname memory 1M \
    exportname-strict=true exportname=good
expect_fail_within 10 "$IMGFUSE" info "nbd+unix:///nope?socket=$NBD_S/s.sock"
expect_err "no export named 'nope'"
"$IMGFUSE" info -F raw "nbd+unix:///good?socket=$NBD_S/s.sock" > /dev/null ||
    fail "the right export name does not open"

note "a server that accepts but never speaks: connect timeout"
python3 - "$NBD_S/bh.port" <<'PY' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
conns = []
s.settimeout(0.5)
end = time.time() + 30
while time.time() < end:
    try:
        conns.append(s.accept()[0])
    except socket.timeout:
        pass
PY
bh=$!
for i in $(seq 1 100); do [ -s "$NBD_S/bh.port" ] && break; sleep 0.05; done
bport=$(cat "$NBD_S/bh.port")
expect_fail_within 6 "$IMGFUSE" info "nbd://127.0.0.1:$bport/x?connect-timeout=2"
expect_err "no answer from the NBD server"
kill $bh 2>/dev/null || true

note "malformed URIs"
expect_fail_within 5 "$IMGFUSE" info "nbd://127.0.0.1:99999/x"
expect_err "bad port"
expect_fail_within 5 "$IMGFUSE" info "nbd+unix:///x"
expect_err "socket"
expect_fail_within 5 "$IMGFUSE" info "nbd://127.0.0.1/x?sokcet=/tmp/a"
expect_err "unknown URI parameter 'sokcet'"

note "read-only export"
start_nbdkit ro -U "$NBD_S/ro.sock" -r pattern 4M
expect_fail_within 10 "$IMGFUSE" -F raw "nbd+unix:///?socket=$NBD_S/ro.sock" "$T/rw"
expect_err "read-only"
! is_mounted "$T/rw" || fail "a refused read-write mount is mounted"
mount_img -r -F raw "nbd+unix:///?socket=$NBD_S/ro.sock" "$T/ro"
nbdcopy "nbd+unix:///?socket=$NBD_S/ro.sock" "$T/pattern.raw"
cmp "$T/ro" "$T/pattern.raw" || fail "read-only mount differs from the export"
if dd if=/dev/zero of="$T/ro" bs=512 count=1 conv=notrunc status=none 2>/dev/null; then
    fail "writing to a read-only mount succeeded"
fi
unmount_img "$T/ro"
echo OK
