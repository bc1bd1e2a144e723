# A throwaway sshd on loopback for the ssh integration tests, sourced after
# ../lib.sh: its own host key, authorized_keys and known_hosts, an ssh-agent
# holding a generated client key, a free port. Everything is stopped by pid
# at exit. Not a test itself: run.sh only runs test-*.sh.
# Gives: $SSH_S (server dir, where remote files live), $SSH_PORT,
# $SSH_ROOT (the server's / after start_sshd_chroot),
# $SSH_KNOWN (known_hosts with the server's key), $SSH_KEY (client key, also
# in the agent), $SSH_FP_SHA256_HEX / _B64, $SSH_FP_SHA1, $SSH_FP_MD5.

SSH_S=$(mktemp -d "${TMPDIR:-/tmp}/imgfuse-ssh-srv.XXXXXX")
SSH_KNOWN=$SSH_S/known_hosts
SSH_KEY=$SSH_S/id_test
SSH_AGENT_PID=

_ssh_stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
}

_ssh_stop_all() {
    local p
    for p in $(cat "$SSH_S/frozen" 2>/dev/null || true); do
        kill -CONT "$p" 2>/dev/null || true
        _ssh_stop_pid "$p"
    done
    _ssh_stop_pid "$(cat "$SSH_S/sshd.pid" 2>/dev/null || true)"
    _ssh_stop_pid "$SSH_AGENT_PID"
    rm -rf "$SSH_S"
    [ -z "${SSH_ROOT:-}" ] || rm -rf "$SSH_ROOT"
}
trap '_cleanup; _ssh_stop_all' EXIT
trap 'exit 143' TERM INT

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# Wait until 127.0.0.1:$1 accepts connections (5 s at most).
_wait_listen() {
    python3 - "$1" <<'EOF'
import socket, sys, time
end = time.time() + 5
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.03)
sys.exit(1)
EOF
}

# start_sshd [extra sshd_config lines]: a fresh sshd on a free port.
start_sshd() {
    ssh-keygen -q -t ed25519 -N '' -C testhost -f "$SSH_S/hostkey"
    ssh-keygen -q -t ed25519 -N '' -C testuser -f "$SSH_KEY"
    cp "$SSH_KEY.pub" "$SSH_S/authorized_keys"
    SSH_PORT=$(free_port)
    echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$SSH_S/hostkey.pub")" > "$SSH_KNOWN"
    cat > "$SSH_S/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $SSH_S/hostkey
PidFile $SSH_S/sshd.pid
AuthorizedKeysFile $SSH_S/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp ${SSH_SFTP_SUBSYSTEM:-internal-sftp}
LogLevel VERBOSE
${1:-}
EOF
    mkdir -p /run/sshd
    /usr/sbin/sshd -t -f "$SSH_S/sshd_config" || fail "sshd_config is invalid"
    /usr/sbin/sshd -D -e -f "$SSH_S/sshd_config" 2> "$SSH_S/sshd.log" &
    echo $! > "$SSH_S/sshd.pid"
    _wait_listen "$SSH_PORT" || fail "sshd did not listen on port $SSH_PORT: $(cat "$SSH_S/sshd.log")"
    local blob
    blob=$(cut -d' ' -f2 "$SSH_S/hostkey.pub")
    SSH_FP_SHA256_HEX=$(echo "$blob" | base64 -d | sha256sum | cut -d' ' -f1)
    SSH_FP_SHA256_B64=$(ssh-keygen -l -E sha256 -f "$SSH_S/hostkey.pub" | awk '{print $2}')
    SSH_FP_SHA1=$(echo "$blob" | base64 -d | sha1sum | cut -d' ' -f1)
    SSH_FP_MD5=$(ssh-keygen -l -E md5 -f "$SSH_S/hostkey.pub" | awk '{print $2}')
}

# start_sshd_chroot: start_sshd with SFTP confined to $SSH_ROOT, a fresh
# directory: server path /x is $SSH_ROOT/x here, so a name can exist on this
# host and not on the server. sshd wants every component of the chroot
# root-owned and not group/world-writable, hence /run rather than /tmp.
start_sshd_chroot() {
    SSH_ROOT=$(mktemp -d /run/imgfuse-ssh-root.XXXXXX)
    chmod 755 "$SSH_ROOT"
    start_sshd "ChrootDirectory $SSH_ROOT"
}

# start_agent: an ssh-agent holding the client key; exports SSH_AUTH_SOCK.
start_agent() {
    export SSH_AUTH_SOCK=$SSH_S/agent.sock
    SSH_AGENT_PID=$(ssh-agent -a "$SSH_AUTH_SOCK" -s | sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p')
    [ -n "$SSH_AGENT_PID" ] || fail "ssh-agent did not start"
    ssh-add -q "$SSH_KEY" 2>/dev/null || fail "ssh-add failed"
}

# The sshd processes serving current connections (children of the listener).
ssh_session_pids() {
    pgrep -P "$(cat "$SSH_S/sshd.pid")" || true
}

# ssh_freeze_sessions: SIGSTOP them (a server that stops answering); they
# are resumed and stopped at exit.
ssh_freeze_sessions() {
    local p
    for p in $(ssh_session_pids); do
        echo "$p" >> "$SSH_S/frozen"
        kill -STOP "$p"
    done
    [ -s "$SSH_S/frozen" ] || fail "no ssh session to freeze"
}

# ssh_kill_sessions: the server side of every connection dies.
ssh_kill_sessions() {
    local p n=0
    for p in $(ssh_session_pids); do
        _ssh_stop_pid "$p"
        n=$((n + 1))
    done
    [ $n -gt 0 ] || fail "no ssh session to kill"
}

# ssh_uri PATH [QUERY]: the URI of a file in the server dir, host key from
# our known_hosts.
ssh_uri() {
    echo "ssh://root@127.0.0.1:$SSH_PORT$1?known_hosts=$SSH_KNOWN${2:+&$2}"
}

