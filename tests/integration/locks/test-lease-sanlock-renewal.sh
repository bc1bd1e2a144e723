#!/bin/bash
# imgfuse-test: serial (a guest, a fixed port or socket, or daemon timing)
# sanlock revokes a lease when this host cannot renew its lockspace: the
# lockspace lives on storage that starts failing (an imgfuse mount of an
# nbdkit export whose error filter turns every request into EIO once a
# file exists). After 8 x io_timeout (16 s) without a renewal, sanlock runs
# imgfuse's kill path; the data mount then refuses writes with EIO, still
# reads, and says so. The sanlock daemon runs without a watchdog (-w 0).
. "$(dirname "$0")/../lib.sh"

S=$T/sl
mkdir -p "$S/run" "$S/leases"
PIDS=()
SLD=
stop_all() {
    local p
    fusermount3 -u "$T/m" 2>/dev/null || true
    # its lockspace has failed: a clean shutdown would wait for it in vain,
    # and without a watchdog nothing else depends on the daemon
    [ -n "$SLD" ] && kill -9 "$SLD" 2>/dev/null || true
    fusermount3 -uz "$LSF" 2>/dev/null || true
    # and the lockspace's imgfuse, so that nbdkit's client goes away
    p=$(cat "$T/pid.$(echo "$LSF" | md5sum | cut -c1-8)" 2>/dev/null || true)
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -9 "$p" 2>/dev/null || true
    done
}
LSF=$S/lockspace.raw            # the failing storage, as a file
trap 'stop_all; _cleanup' EXIT

nbdkit -f -U "$S/nbd.sock" --filter=error memory 4M error=EIO error-rate=1 \
    error-file="$S/fail" 2>"$S/nbdkit.log" &
PIDS+=($!)
for i in $(seq 1 100); do [ -S "$S/nbd.sock" ] && break; sleep 0.05; done
mount_img -F raw "nbd+unix:///?socket=$S/nbd.sock" "$LSF" ||
    fail "imgfuse mount of the nbdkit export failed"
SANLOCK_RUN_DIR=$S/run SANLOCK_PRIVILEGED=0 \
    sanlock daemon -D -w 0 -h 0 -l 0 -L -1 -S -1 -e imgfuse-renewal >"$S/d.log" 2>&1 &
SLD=$!
for i in $(seq 1 200); do
    SANLOCK_RUN_DIR=$S/run sanlock client status >/dev/null 2>&1 && break
    [ "$i" = 200 ] && fail "the sanlock daemon did not start: $(tail -3 "$S/d.log")"
    sleep 0.05
done
export SANLOCK_RUN_DIR=$S/run
SPEC="lockspace=$LSF,io_timeout=2,dir=$S/leases"
"$IMGFUSE" lease init "sanlock,$SPEC" >/dev/null || fail "lease init"

IMG=$T/disk.raw
qemu-img create -q -f raw "$IMG" 4M
"$IMGFUSE" -f --lease="sanlock,$SPEC,host_id=1" "$IMG" "$T/m" 2>"$T/fg.err" &
PIDS+=($!)
for i in $(seq 1 400); do is_mounted "$T/m" && break; sleep 0.05; done
is_mounted "$T/m" || fail "the leased mount: $(cat "$T/fg.err")"
_MOUNTS+=("$T/m")
echo "before" | dd of="$T/m" conv=notrunc,fsync status=none
sanlock client status | grep -q "^r __LIBVIRT__DISKS__:" || fail "no lease held"

touch "$S/fail"                 # the lockspace's storage fails from now on
start=$(date +%s)
for i in $(seq 1 600); do grep -q revoked "$T/fg.err" && break; sleep 0.1; done
grep -q "disk.raw: sanlock revoked the lease .* writes fail with EIO" "$T/fg.err" ||
    fail "no revocation within 60 s: $(cat "$T/fg.err"); $(grep -i 'fail\|kill' "$S/d.log" | tail -3)"
note "ok: revoked after $(( $(date +%s) - start )) s: $(grep revoked "$T/fg.err")"
rc=0
echo "after" | dd of="$T/m" conv=notrunc,fsync status=none 2>"$T/dd.err" || rc=$?
[ $rc -ne 0 ] && grep -q "Input/output error" "$T/dd.err" ||
    fail "a write after the revocation: rc $rc, $(cat "$T/dd.err")"
expect_eq "$(head -c 6 "$T/m")" "before" "reads after the revocation"
expect_eq "$(head -c 6 "$IMG")" "before" "the image after the revocation"
grep -q "check_our_lease failed" "$S/d.log" || fail "sanlock's log does not show a renewal failure"
fusermount3 -u "$T/m"
note "ok: writes fail with EIO, reads go on"
