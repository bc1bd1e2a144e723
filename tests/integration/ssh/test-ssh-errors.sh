#!/bin/bash
# Bad input gets a clear message quickly: connection refused, a server that
# never speaks (connect timeout), failed authentication, a missing file, a
# directory, malformed URIs and options.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/ssh-lib.sh"

start_sshd
start_agent
qemu-img create -q -f raw "$SSH_S/d.img" 1M
hp="127.0.0.1:$SSH_PORT"

note "connection refused"
dead=$(free_port)
expect_fail_within 5 "$IMGFUSE" info "ssh://root@127.0.0.1:$dead/x?host_key_check=no"
expect_err "connection to 127.0.0.1:$dead refused; is the ssh server running?"
expect_fail_within 5 "$IMGFUSE" -r "ssh://root@127.0.0.1:$dead/x?host_key_check=no" "$T/never"
expect_err "refused"
! is_mounted "$T/never" || fail "a failed mount left a mount behind"

note "a server that accepts but never speaks: connect timeout"
python3 - "$SSH_S/bh.port" <<'PY' &
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
conns = []
s.settimeout(0.5)
end = time.time() + 20
while time.time() < end:
    try:
        conns.append(s.accept()[0])
    except socket.timeout:
        pass
PY
bh=$!
for i in $(seq 1 100); do [ -s "$SSH_S/bh.port" ] && break; sleep 0.05; done
bport=$(cat "$SSH_S/bh.port")
expect_fail_within 6 "$IMGFUSE" info "ssh://root@127.0.0.1:$bport/x?host_key_check=no&connect-timeout=2"
expect_err "127.0.0.1:$bport accepted the connection but did not complete the ssh handshake within 2 s"
kill $bh 2>/dev/null || true

note "missing file and a directory"
expect_fail_within 5 "$IMGFUSE" info "$(ssh_uri "$SSH_S/none.img")"
expect_err "no such file '$SSH_S/none.img' on $hp"
expect_fail_within 5 "$IMGFUSE" -F raw "$(ssh_uri "$SSH_S/none.img")" "$T/never"
expect_err "no such file"
expect_fail_within 5 "$IMGFUSE" info -F raw "$(ssh_uri "$SSH_S")"
expect_err "is a directory"

note "authentication failure"
ssh-keygen -q -t ed25519 -N '' -f "$T/stranger"
expect_fail_within 5 env -u SSH_AUTH_SOCK HOME="$T" "$IMGFUSE" info -F raw "$(ssh_uri "$SSH_S/d.img")"
expect_err "authentication as 'root' failed"
expect_err "SSH_AUTH_SOCK is not set"
expect_fail_within 5 "$IMGFUSE" info -F raw "$(ssh_uri "$SSH_S/d.img" "identity=$T/stranger")"
expect_err "$hp did not accept the key '$T/stranger' for user 'root'"
expect_fail_within 5 "$IMGFUSE" info -F raw "$(ssh_uri "$SSH_S/d.img" "identity=$T/missing-key")"
expect_err "cannot read the private key '$T/missing-key'"
expect_fail_within 5 "$IMGFUSE" info -F raw "ssh://nobody-here@127.0.0.1:$SSH_PORT$SSH_S/d.img?known_hosts=$SSH_KNOWN"
expect_err "authentication as 'nobody-here' failed"

note "malformed URIs and options"
expect_fail_within 5 "$IMGFUSE" info "ssh://127.0.0.1:99999/x"
expect_err "not a port number"
expect_fail_within 5 "$IMGFUSE" info "ssh://127.0.0.1/"
expect_err "no remote file"
expect_fail_within 5 "$IMGFUSE" info "ssh://127.0.0.1/x?hostkeycheck=no"
expect_err "unknown URI parameter 'hostkeycheck'"
expect_fail_within 5 "$IMGFUSE" info "ssh://root:pw@127.0.0.1/x"
expect_err "passwords in ssh URIs are not supported"
expect_fail_within 5 "$IMGFUSE" info "ssh://127.0.0.1/x?host_key_check=maybe"
expect_err "use yes, no, md5:HEX"
expect_fail_within 5 "$IMGFUSE" info "driver=ssh,host=127.0.0.1,path=/x,port=abc"
expect_err "port 'abc'"
echo OK
