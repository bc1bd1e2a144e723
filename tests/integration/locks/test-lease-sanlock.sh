#!/bin/bash
# imgfuse-test: serial (a guest, a fixed port or socket, or daemon timing)
# sanlock leases with two real sanlock daemons as two hosts (each its own
# SANLOCK_RUN_DIR and host name, no watchdog: -w 0, io_timeout 2 s) on one
# lockspace file: imgfuse lease init formats it; host 1's read-write mount
# joins as host_id 1 and holds the image's resource lease (seen by sanlock
# client status and in the lease file named by the MD5 of the path, as
# libvirt's disk leases); host 2 is refused naming the holder's host_id, a
# second process on host 1 too, a read-only mount is let in; after the
# unmount host 2 takes over, after host 2's imgfuse is killed -9 host 1 does;
# when host 2 asks sanlock to take the lease (request, graceful), sanlock
# revokes it from host 1's mount: writes fail with EIO, reads go on, and
# imgfuse says so; host 2 then gets the lease.
# The slow case (a dead host's lease expiring, 8 x io_timeout + 60 s) is
# not run here.
. "$(dirname "$0")/../lib.sh"

S=$T/sl
mkdir -p "$S/run1" "$S/run2" "$S/shared/leases"
DAEMONS=()
FG=()
stop_all() {
    local p n
    for p in "${FG[@]}"; do kill "$p" 2>/dev/null || true; done
    for n in 1 2; do
        SANLOCK_RUN_DIR=$S/run$n timeout 10 sanlock client shutdown -f 1 -w 1 \
            >/dev/null 2>&1 &
    done
    wait 2>/dev/null || true
    for p in "${DAEMONS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap 'stop_all; _cleanup' EXIT

for n in 1 2; do
    SANLOCK_RUN_DIR=$S/run$n SANLOCK_PRIVILEGED=0 \
        sanlock daemon -D -w 0 -h 0 -l 0 -L -1 -S -1 -e "imgfuse-host$n" \
        >"$S/d$n.log" 2>&1 &
    DAEMONS+=($!)
done
for n in 1 2; do
    for i in $(seq 1 200); do
        SANLOCK_RUN_DIR=$S/run$n sanlock client status >/dev/null 2>&1 && break
        [ "$i" = 200 ] && fail "sanlock daemon $n did not start: $(tail -3 "$S/d$n.log")"
        sleep 0.05
    done
done
on() { local n=$1; shift; SANLOCK_RUN_DIR=$S/run$n "$@"; }
mount_pid() { cat "$T/pid.$(echo "$1" | md5sum | cut -c1-8)"; }

LSF=$S/shared/leases/__LIBVIRT__DISKS__
IMG=$S/shared/disk.raw
qemu-img create -q -f raw "$IMG" 8M
LEASE_NAME=$(printf '%s' "$IMG" | md5sum | cut -c1-32)
SPEC="sanlock,lockspace=$LSF,io_timeout=2"
on 1 "$IMGFUSE" lease init "$SPEC" > "$T/out" || fail "lease init: $(cat "$T/out")"
expect_eq "$(stat -c %s "$LSF")" "1048576" "lockspace size"
on 1 sanlock client read -s "__LIBVIRT__DISKS__:0:$LSF:0" > "$T/read" 2>&1 ||
    fail "sanlock cannot read the formatted lockspace: $(cat "$T/read")"
note "ok: lease init formatted $LSF"

# host 2 joins in the background while host 1 mounts (each join takes ~5 s)
on 2 sanlock client add_lockspace -s "__LIBVIRT__DISKS__:2:$LSF:0" -o 2 >/dev/null 2>&1 &
JOIN2=$!
on 1 mount_img -o "lease=sanlock,lease.lockspace=$LSF,lease.host_id=1,lease.io_timeout=2" \
    "$IMG" "$T/m1" 2>"$T/err" || fail "host 1's mount: $(cat "$T/err")"
P1=$(mount_pid "$T/m1")
on 1 sanlock client status > "$T/status"
grep -q "^r __LIBVIRT__DISKS__:$LEASE_NAME:$S/shared/leases/$LEASE_NAME:0:[0-9]* p $P1\$" "$T/status" ||
    fail "host 1's daemon does not show imgfuse ($P1) holding $LEASE_NAME: $(cat "$T/status")"
expect_eq "$(stat -c '%s %a' "$S/shared/leases/$LEASE_NAME")" "1048576 600" "the lease file"
wait "$JOIN2" || fail "host 2 could not join the lockspace"
note "ok: host 1 holds the resource lease $LEASE_NAME"

refused() {     # refused WHAT HOST PATTERN ARGS...
    local what=$1 n=$2 pattern=$3 rc=0; shift 3
    on "$n" "$IMGFUSE" "$@" 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "$what: rc $rc; expected a refusal"
    grep -Eq -- "$pattern" "$T/err" || fail "$what: message '$(cat "$T/err")' lacks '$pattern'"
    ! is_mounted "$T/m2" || fail "$what: mounted"
    note "ok: $what: $(cat "$T/err")"
}
H2="--locking=off --lease=sanlock,lockspace=$LSF,host_id=2,io_timeout=2"
H1="--locking=off --lease=sanlock,lockspace=$LSF,host_id=1,io_timeout=2"
refused "host 2, read-write" 2 "disk.raw: the sanlock lease $LEASE_NAME .* held by host_id 1" \
    $H2 "$IMG" "$T/m2"
refused "host 1, another process" 1 "another process on this host holds it" \
    $H1 "$IMG" "$T/m2"
on 2 "$IMGFUSE" $H2 -r "$IMG" "$T/m2" || fail "read-only mount on host 2 refused"
fusermount3 -u "$T/m2"

# unmount on host 1: host 2 takes over; host 2 killed -9: host 1 does
unmount_img "$T/m1"
on 2 mount_img $H2 "$IMG" "$T/m2" || fail "takeover by host 2"
P2=$(mount_pid "$T/m2")
echo "host2 data" | dd of="$T/m2" conv=notrunc status=none
note "ok: host 2 took the lease after host 1 unmounted"
kill -9 "$P2"
for i in $(seq 1 100); do kill -0 "$P2" 2>/dev/null || break; sleep 0.05; done
umount -l "$T/m2" 2>/dev/null || true
on 1 mount_img $H1 "$IMG" "$T/m1" || fail "host 1 after host 2's kill -9"
expect_eq "$(head -c 10 "$T/m1")" "host2 data" "host 2's write"
unmount_img "$T/m1"
note "ok: host 1 took the lease after host 2's imgfuse was killed -9"

# revocation: host 1 mounted in the foreground (its messages on stderr)
SANLOCK_RUN_DIR=$S/run1 "$IMGFUSE" -f $H1 "$IMG" "$T/m1" 2>"$T/fg.err" &
FG+=($!)
for i in $(seq 1 200); do is_mounted "$T/m1" && break; sleep 0.05; done
is_mounted "$T/m1" || fail "foreground mount on host 1: $(cat "$T/fg.err")"
echo "before" | dd of="$T/m1" conv=notrunc,fsync status=none
LVER=$(on 1 sanlock client status | awk -v n="$LEASE_NAME" '$1 == "r" && index($2, n) {n = split($2, a, ":"); print a[n]}')
[ -n "$LVER" ] || fail "no lease version in: $(on 1 sanlock client status)"
on 2 sanlock client request -r "__LIBVIRT__DISKS__:$LEASE_NAME:$S/shared/leases/$LEASE_NAME:0:$((LVER + 1))" \
    -f 2 >/dev/null || fail "sanlock client request failed"
for i in $(seq 1 300); do grep -q "revoked" "$T/fg.err" && break; sleep 0.05; done
grep -q "disk.raw: sanlock revoked the lease .* writes fail with EIO" "$T/fg.err" ||
    fail "no revocation message: $(cat "$T/fg.err")"
rc=0
echo "after" | dd of="$T/m1" conv=notrunc,fsync status=none 2>"$T/dd.err" || rc=$?
[ $rc -ne 0 ] && grep -q "Input/output error" "$T/dd.err" ||
    fail "a write after the revocation: rc $rc, $(cat "$T/dd.err")"
expect_eq "$(head -c 6 "$T/m1")" "before" "reads after the revocation"
expect_eq "$(head -c 6 "$IMG")" "before" "the image after the revocation"
note "ok: revoked: $(grep revoked "$T/fg.err")"
on 2 mount_img $H2 "$IMG" "$T/m2" || fail "host 2 after the revocation"
unmount_img "$T/m2"
fusermount3 -u "$T/m1"
note "ok: host 2 got the lease after the revocation"
