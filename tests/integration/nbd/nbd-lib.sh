# NBD servers for the nbd integration tests, sourced after ../lib.sh.
# Starts nbdkit and qemu-nbd on unix sockets or TCP loopback, records their
# pidfiles and stops them at exit (after lib.sh has unmounted everything).
# Not a test itself: run.sh only runs test-*.sh.

NBD_S=$(mktemp -d "${TMPDIR:-/tmp}/imgfuse-nbd-srv.XXXXXX")

_nbd_stop_all() {
    local f pid i
    for f in "$NBD_S"/*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$NBD_S"
}
trap '_cleanup; _nbd_stop_all' EXIT
trap 'exit 143' TERM INT

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# nbd_stop NAME: stop the server started under NAME.
nbd_stop() {
    local f=$NBD_S/$1.pid pid i
    pid=$(cat "$f")
    kill "$pid"
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 0; }
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
}

# start_nbdkit NAME ARGS...: nbdkit's child writes the pidfile once it
# listens, which may be just after the parent has returned.
start_nbdkit() {
    local name=$1 i; shift
    nbdkit -P "$NBD_S/$name.pid" "$@" || fail "nbdkit $* did not start"
    for i in $(seq 1 100); do
        [ -s "$NBD_S/$name.pid" ] && return 0
        sleep 0.05
    done
    fail "nbdkit $name wrote no pidfile within 5 s"
}

# start_qemu_nbd NAME ARGS...: --fork returns when the server is ready.
start_qemu_nbd() {
    local name=$1; shift
    qemu-nbd --fork --persistent --pid-file="$NBD_S/$name.pid" "$@" ||
        fail "qemu-nbd $* did not start"
}

# make_pki DIR: CA, server and client certificates, and a PSK for alice.
make_pki() {
    local d=$1 w
    mkdir -p "$d"
    printf 'cn = test CA\nca\ncert_signing_key\nexpiration_days = 2\n' > "$d/ca.info"
    printf 'organization = test\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n' > "$d/server.info"
    printf 'organization = test\ncn = client\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n' > "$d/client.info"
    certtool --generate-privkey --key-type=ecdsa --outfile "$d/ca-key.pem" 2>/dev/null
    certtool --generate-self-signed --load-privkey "$d/ca-key.pem" \
        --template "$d/ca.info" --outfile "$d/ca-cert.pem" 2>/dev/null
    for w in server client; do
        certtool --generate-privkey --key-type=ecdsa --outfile "$d/$w-key.pem" 2>/dev/null
        certtool --generate-certificate --load-privkey "$d/$w-key.pem" \
            --load-ca-certificate "$d/ca-cert.pem" --load-ca-privkey "$d/ca-key.pem" \
            --template "$d/$w.info" --outfile "$d/$w-cert.pem" 2>/dev/null
    done
    psktool -u alice -p "$d/keys.psk" >/dev/null
}

