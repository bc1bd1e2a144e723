# A throwaway GlusterFS server for the gluster integration test, sourced
# after ../lib.sh: glusterd with its state in a scratch dir, one
# single-brick volume, and a glusterfs FUSE mount of it used as the oracle's
# view. Everything is stopped by pid at exit, and whatever gluster created
# under its compiled-in paths (/var/lib/glusterd, /var/log/glusterfs,
# /var/run/gluster) during the run is removed again.
# Not a test itself: run.sh only runs test-*.sh.

GL_S=$(mktemp -d "${TMPDIR:-/tmp}/imgfuse-gluster.XXXXXX")
GL_SYS_DIRS="/var/lib/glusterd /var/log/glusterfs /var/run/gluster"
G="gluster --glusterd-sock=$GL_S/run/glusterd.socket --log-file=$GL_S/log/cli.log --mode=script"
GL_VOL=imgfusevol
GL_STARTED=0
GL_IP=                           # glusterd's address, set by gl_start

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL.
_gl_stop_pid() {
    local pid=$1 i
    kill -CONT "$pid" 2>/dev/null || true       # a test may have stopped it
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
}

_gl_stop_all() {
    local f pid
    if mountpoint -q "$GL_S/vol" 2>/dev/null; then
        umount "$GL_S/vol" 2>/dev/null || umount -l "$GL_S/vol" 2>/dev/null || true
    fi
    # FUSE client, bricks (glusterfsd), then glusterd: all by their pidfiles
    for f in "$GL_S/fuse.pid" $(find "$GL_S/run" -name '*.pid' 2>/dev/null) \
             "$GL_S/glusterd.pid"; do
        [ -s "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        [ -n "$pid" ] && _gl_stop_pid "$pid"
    done
    # what gluster created outside the scratch dir during this run
    if [ "$GL_STARTED" = 1 ] && [ -f "$GL_S/sys.before" ]; then
        find $GL_SYS_DIRS 2>/dev/null | sort > "$GL_S/sys.after"
        comm -13 "$GL_S/sys.before" "$GL_S/sys.after" | sort -r |
            while read -r p; do
                if [ -d "$p" ] && [ ! -L "$p" ]; then rmdir "$p" 2>/dev/null || true
                else rm -f "$p"; fi
            done
    fi
    rm -rf "$GL_S"
}
trap '_cleanup; _gl_stop_all' EXIT
trap 'exit 143' TERM INT

_gl_brick_online() {
    # the status table wraps long brick paths: match "... Y <pid>" at the end
    $G volume status "$GL_VOL" 2>/dev/null | grep -Eq '[[:space:]]Y[[:space:]]+[0-9]+[[:space:]]*$'
}

_gl_diag() {
    $G volume status "$GL_VOL" 2>&1 | head -8
    tail -5 "$GL_S/log/glusterd.log"
    tail -5 /var/log/glusterfs/bricks/*"$(basename "$GL_S")"* 2>/dev/null
}

# gl_brick_pid: the pid of the volume's brick process (glusterfsd).
gl_brick_pid() {
    cat "$(find "$GL_S/run/vols/$GL_VOL" -name '*.pid' | head -1)"
}

# gl_start: glusterd on $GL_IP:24007, volume $GL_VOL on one brick, FUSE
# mount at $GL_S/vol.
gl_start() {
    local bhost i
    mkdir -p "$GL_S"/{work,log,run,brick,vol}
    if ss -ltnH 'sport = :24007' | grep -q .; then
        fail "port 24007 is taken: another glusterd runs on this machine; stop it first"
    fi
    # gluster refuses 127.*/localhost as a brick host, so the brick is
    # named by the host name, which must resolve to a loopback address
    # (127.0.0.1 or Debian's 127.0.1.1); glusterd listens on that address
    bhost=$(hostname)
    GL_IP=$(getent ahostsv4 "$bhost" | awk '$1 ~ /^127\./ {print $1; exit}')
    [ -n "$GL_IP" ] ||
        fail "the host name '$bhost' must resolve to a loopback address (127.x) in /etc/hosts for the brick"
    find $GL_SYS_DIRS 2>/dev/null | sort > "$GL_S/sys.before"
    cat > "$GL_S/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $GL_S/work
    option transport-type socket
    option transport.socket.listen-port 24007
    option transport.address-family inet
    option transport.socket.bind-address $GL_IP
    option glusterd-sockfile $GL_S/run/glusterd.socket
    option run-directory $GL_S/run
    option ping-timeout 0
    option event-threads 1
    option base-port 49152
    option max-port 49252
end-volume
EOF
    GL_STARTED=1
    glusterd -f "$GL_S/glusterd.vol" -p "$GL_S/glusterd.pid" \
        -l "$GL_S/log/glusterd.log" --log-level=INFO || fail "glusterd did not start"
    for i in $(seq 1 300); do
        $G peer status > /dev/null 2>&1 && break
        [ "$i" = 300 ] && fail "glusterd not answering after 30 s: $(tail -5 "$GL_S/log/glusterd.log")"
        sleep 0.1
    done
    $G volume create "$GL_VOL" "$bhost:$GL_S/brick/b1" force > /dev/null ||
        fail "gluster volume create failed"
    # unprivileged client ports; no client-side caches in the oracle's view
    for o in server.allow-insecure=on performance.io-cache=off \
             performance.quick-read=off performance.read-ahead=off \
             performance.stat-prefetch=off performance.open-behind=off; do
        $G volume set "$GL_VOL" "${o%%=*}" "${o#*=}" > /dev/null ||
            fail "gluster volume set $o failed"
    done
    $G volume start "$GL_VOL" > /dev/null || fail "gluster volume start failed"
    # a brick that did not come up (seen under load) gets one forced restart
    for i in $(seq 1 200); do
        _gl_brick_online && break
        [ "$i" = 60 ] && $G volume start "$GL_VOL" force > /dev/null 2>&1
        [ "$i" = 200 ] && fail "the brick did not come online within 40 s: $(_gl_diag)"
        sleep 0.2
    done
    glusterfs --volfile-server="$GL_IP" --volfile-id="$GL_VOL" \
        --direct-io-mode=enable --attribute-timeout=0 --entry-timeout=0 \
        --pid-file="$GL_S/fuse.pid" --log-file="$GL_S/log/fuse.log" "$GL_S/vol" ||
        fail "glusterfs FUSE mount failed"
    for i in $(seq 1 100); do
        mountpoint -q "$GL_S/vol" && [ -w "$GL_S/vol" ] && return 0
        sleep 0.1
    done
    fail "the glusterfs FUSE mount did not come up"
}
