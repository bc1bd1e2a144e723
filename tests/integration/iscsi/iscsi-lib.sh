# tgtd (userspace iSCSI target) for the iscsi integration tests, sourced after
# ../lib.sh. Each tgtd gets its own portal port and control port (-C, which
# names its socket in /var/run/tgtd); all are stopped at exit, after lib.sh
# has unmounted everything. tgtd ignores SIGTERM while it has targets, so
# stopping deletes the targets and the system, then SIGKILLs if needed.
# Not a test itself: run.sh only runs test-*.sh.

ISCSI_S=$(mktemp -d "${TMPDIR:-/tmp}/imgfuse-iscsi-srv.XXXXXX")
IQN=iqn.2024-01.test.imgfuse:disk1
CHAP_USER=testuser
CHAP_PASS=testsecret1234
OUT_USER=outuser
OUT_PASS=outsecret1234

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# tgt_stop NAME: stop the tgtd started as NAME and forget it.
tgt_stop() {
    local d=$ISCSI_S/$1 pid cp i
    [ -e "$d/pid" ] || return 0
    pid=$(cat "$d/pid"); cp=$(cat "$d/cp")
    timeout 5 tgtadm -C "$cp" --op delete --mode target --tid 1 --force >/dev/null 2>&1 || true
    timeout 5 tgtadm -C "$cp" --op delete --mode system >/dev/null 2>&1 || true
    for i in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    rm -f "/var/run/tgtd/socket.$cp" "/var/run/tgtd/socket.$cp.lock" "$d/pid"
}

_tgt_stop_all() {
    local d
    for d in "$ISCSI_S"/*/; do
        [ -e "$d/pid" ] && tgt_stop "$(basename "$d")"
    done
    rm -rf "$ISCSI_S"
}
trap '_cleanup; _tgt_stop_all' EXIT
trap 'exit 143' TERM INT

# tgt NAME ARGS...: tgtadm --lld iscsi against the tgtd called NAME.
tgt() {
    local cp; cp=$(cat "$ISCSI_S/$1/cp"); shift
    tgtadm -C "$cp" --lld iscsi "$@"
}

# tgt_start NAME [PORT]: a tgtd on 127.0.0.1:PORT (a free one by default);
# sets TGT_PORT. Ready once its control socket answers.
tgt_start() {
    local name=$1 port=${2:-} d=$ISCSI_S/$1 i pid cp
    [ -n "$port" ] || port=$(free_port)
    mkdir -p "$d"
    # the control port (at most 32767) only has to be unique among
    # running tgtds: it names the socket in /var/run/tgtd
    cp=$(( (port % 30000) + 1000 ))
    while [ -e "/var/run/tgtd/socket.$cp" ]; do cp=$(( cp % 32000 + 1 + RANDOM % 100 )); done
    echo "$cp" > "$d/cp"
    echo "$port" > "$d/port"
    tgtd -f -C "$cp" --iscsi portal=127.0.0.1:"$port" > "$d/log" 2>&1 &
    pid=$!
    echo "$pid" > "$d/pid"
    for i in $(seq 1 100); do
        tgtadm -C "$cp" --op show --mode sys > /dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || fail "tgtd $name exited: $(cat "$d/log")"
        sleep 0.05
    done
    tgtadm -C "$cp" --op show --mode sys > /dev/null 2>&1 ||
        fail "tgtd $name did not answer within 5 s"
    TGT_PORT=$port
}

# tgt_lun NAME FILE [thin]: target 1 ($IQN) open to every initiator with
# FILE as lun 1, thin-provisioned (UNMAP, GET LBA STATUS) if asked.
tgt_lun() {
    tgt "$1" --op new --mode target --tid 1 -T "$IQN"
    tgt "$1" --op new --mode logicalunit --tid 1 --lun 1 -b "$2"
    if [ "${3:-}" = thin ]; then
        tgt "$1" --op update --mode logicalunit --tid 1 --lun 1 \
            --params thin_provisioning=1
    fi
    tgt "$1" --op bind --mode target --tid 1 -I ALL
}

# tgt_chap NAME [mutual]: require CHAP (and let the target prove itself).
tgt_chap() {
    tgt "$1" --op new --mode account --user "$CHAP_USER" --password "$CHAP_PASS"
    tgt "$1" --op bind --mode account --tid 1 --user "$CHAP_USER"
    if [ "${2:-}" = mutual ]; then
        tgt "$1" --op new --mode account --user "$OUT_USER" --password "$OUT_PASS"
        tgt "$1" --op bind --mode account --tid 1 --user "$OUT_USER" --outgoing
    fi
}

# iscsi_url NAME [USERINFO@]: the URL of lun 1 on the tgtd called NAME.
iscsi_url() {
    echo "iscsi://${2:-}127.0.0.1:$(cat "$ISCSI_S/$1/port")/$IQN/1"
}
