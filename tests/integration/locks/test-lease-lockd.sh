#!/bin/bash
# lockd leases between two "hosts" (two mount namespaces, each with its own
# view of one shared directory at the same path and its own FUSE mounts):
# the lease files are libvirt virtlockd's (SHA-256 of the path, 0600 in a
# 0700 dir, a POSIX lock on byte 0 length 1, read from /proc/locks); a
# second read-write mount is refused naming the image, the lease and the
# holder's pid, even with --locking=off; a read-only mount is let in; after
# an unmount, and after a kill -9, the other host gets in; the backing file
# is leased shared; --share-rw writers share a lease; a symlink path leases
# both names; an outside holder of the lease (what virtlockd does for a
# libvirt guest) keeps imgfuse out; dir=direct locks byte 0 of the image
# itself; bad specs and a source with no file to lease are refused.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lease-lib.sh"
HOLDER=
trap '[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null; hosts_stop; umount "$VIEW" 2>/dev/null || true; _cleanup' EXIT

STORE=$T/store           # the shared storage
VIEW=$T/view             # where each host sees it
mkdir -p "$STORE" "$VIEW"
qemu-img create -q -f raw "$STORE/base.raw" 4M
qemu-io -f raw -c 'write -P 0x5a 0 1M' "$STORE/base.raw" >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw "$STORE/top.qcow2"
ln -s top.qcow2 "$STORE/alias.qcow2"
for h in A B; do
    host_start $h mount --bind "$STORE" "$VIEW"
done
mount --bind "$STORE" "$VIEW"          # the checks' view, here
LS=$VIEW/lockspace
LEASE="--lease=lockd,dir=$LS"
TOP=$VIEW/top.qcow2
BASE=$VIEW/base.raw
TOP_LEASE=$LS/$(lease_name "$TOP")
BASE_LEASE=$LS/$(lease_name "$BASE")

# --- host A takes the image read-write; the files are virtlockd's ---
host_mount A "$LEASE" "$TOP" "$T/a.raw"
PA=$(host_daemon A "$T/a.raw")
[ -f "$TOP_LEASE" ] || fail "no lease file $TOP_LEASE: $(ls "$STORE/lockspace")"
expect_eq "$(stat -c '%a %s' "$TOP_LEASE")" "600 0" "lease file mode and size"
expect_eq "$(stat -c %a "$STORE/lockspace")" "700" "lockspace dir mode"
expect_eq "$(getlk "$TOP_LEASE")" "F_WRLCK $PA" "the top image's lease (F_GETLK)"
expect_eq "$(getlk "$BASE_LEASE")" "F_RDLCK $PA" "the backing file's lease (F_GETLK)"
expect_eq "$(ls "$STORE/lockspace" | wc -l)" "2" "lease files (top, backing)"
note "ok: host A holds $TOP_LEASE exclusively and $BASE_LEASE shared"

# --- host B: refused read-write (even without OFD locks), read-only let in ---
mount_refused_on B "second read-write mount" \
    "top.qcow2: the lockd lease $TOP_LEASE is held exclusively by pid $PA" \
    --locking=off "$LEASE" "$TOP" "$T/b.raw"
mount_refused_on B "-o form" "lockd lease .* pid $PA" \
    -o "locking=off,lease=lockd,lease.dir=$LS" "$TOP" "$T/b.raw"
mount_refused_on B "read-write mount of the backing file" \
    "base.raw: the lockd lease $BASE_LEASE is held shared by pid $PA" \
    --locking=off "$LEASE" "$BASE" "$T/b.raw"
host_mount B --locking=off -r "$LEASE" "$TOP" "$T/b.raw"
expect_eq "$(on B sha256sum "$T/b.raw" | cut -c1-64)" "$(qemu_raw_sha "$STORE/top.qcow2" qcow2)" \
    "read-only mount on B"
host_umount B "$T/b.raw"
note "ok: read-only mount on host B allowed"

# --- A unmounts: the lease files go (as virtlockd's), B gets in ---
host_umount A "$T/a.raw"
expect_eq "$(ls "$STORE/lockspace" | wc -l)" "0" "lease files after the unmount"
host_mount B --locking=off "$LEASE" "$TOP" "$T/b.raw"
PB=$(host_daemon B "$T/b.raw")
expect_eq "$(getlk "$TOP_LEASE")" "F_WRLCK $PB" "B's lease"
on B sh -c "printf 'written on B' | dd of=$T/b.raw conv=notrunc status=none"
note "ok: host B got in after A's unmount"

# --- B is killed -9: the kernel drops its lock, A gets in ---
kill -9 "$PB"
wait_exit "$PB"
on B umount -l "$T/b.raw" 2>/dev/null || true
host_mount A "$LEASE" "$TOP" "$T/a.raw"
PA=$(host_daemon A "$T/a.raw")
expect_eq "$(on A head -c 12 "$T/a.raw")" "written on B" "B's write seen on A"
expect_eq "$(getlk "$TOP_LEASE")" "F_WRLCK $PA" "A's lease after B's kill -9"
host_umount A "$T/a.raw"
note "ok: host A got in after B was killed -9"

# --- --share-rw: shared leases, two such writers coexist, a plain one not ---
host_mount A --share-rw "$LEASE" "$BASE" "$T/a.raw"
PA=$(host_daemon A "$T/a.raw")
expect_eq "$(getlk "$BASE_LEASE")" "F_RDLCK $PA" "a --share-rw writer's lease"
host_mount B --share-rw "$LEASE" "$BASE" "$T/b.raw"
mount_refused_on B "plain writer next to --share-rw ones" "base.raw: the lockd lease $BASE_LEASE is held shared" \
    --locking=off "$LEASE" "$BASE" "$T/c.raw"
host_umount A "$T/a.raw"
host_umount B "$T/b.raw"
expect_eq "$(ls "$STORE/lockspace" | wc -l)" "0" "lease files after the --share-rw mounts"

# --- the path as written and the canonical path both get a lease ---
host_mount A "$LEASE" "$VIEW/alias.qcow2" "$T/a.raw"
PA=$(host_daemon A "$T/a.raw")
expect_eq "$(getlk "$LS/$(lease_name "$VIEW/alias.qcow2")")" "F_WRLCK $PA" "symlink name's lease"
expect_eq "$(getlk "$TOP_LEASE")" "F_WRLCK $PA" "canonical name's lease"
mount_refused_on B "the image by its other name" "lockd lease $TOP_LEASE .*pid $PA" \
    --locking=off "$LEASE" "$TOP" "$T/b.raw"
host_umount A "$T/a.raw"

# --- an outside holder, as virtlockd holds a libvirt guest's lease ---
hold_lock ex "$TOP_LEASE" "$T/held" &
HOLDER=$!
for i in $(seq 1 100); do [ -f "$T/held" ] && break; sleep 0.05; done
[ -f "$T/held" ] || fail "the outside lock holder did not start"
expect_eq "$(getlk "$TOP_LEASE")" "F_WRLCK $HOLDER" "the outside holder's lock"
mount_refused_on A "lease held by another program" "held exclusively by pid $HOLDER" \
    "$LEASE" "$TOP" "$T/a.raw"
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true
HOLDER=

# --- dir=direct: byte 0 of the image itself ---
host_mount A --lease=lockd,dir=direct "$TOP" "$T/a.raw"
PA=$(host_daemon A "$T/a.raw")
expect_eq "$(getlk "$STORE/top.qcow2")" "F_WRLCK $PA" "dir=direct lock on the image"
expect_eq "$(getlk "$STORE/base.raw")" "F_RDLCK $PA" "dir=direct lock on the backing file"
mount_refused_on B "dir=direct, second writer" "top.qcow2: the lockd lease \(byte 0 of the image, dir=direct\) is held exclusively by pid $PA" \
    --locking=off --lease=lockd,dir=direct "$TOP" "$T/b.raw"
host_umount A "$T/a.raw"
expect_eq "$(getlk "$STORE/top.qcow2")" "F_UNLCK 0" "dir=direct lock after the unmount"

# --- bad specs are refused before anything happens ---
mount_refused_on A "unknown manager" "not a lease manager; use none, lockd or sanlock" \
    --lease=lockdd "$TOP" "$T/a.raw"
mount_refused_on A "unknown option" "unknown option 'foo' for lockd" \
    --lease=lockd,foo=1 "$TOP" "$T/a.raw"
mount_refused_on A "lease options without a manager" "without a lease manager" \
    -o lease.dir=/x "$TOP" "$T/a.raw"
# a source with no file to lease (nbd) is refused rather than left unleased
nbdkit -U - memory 1M --run "! '$IMGFUSE' -F raw $LEASE \"\$uri\" '$T/n.raw' 2>'$T/err'" ||
    fail "imgfuse mounted an nbd export with --lease"
grep -q -- "--lease guards image files and devices" "$T/err" || fail "nbd with --lease: $(cat "$T/err")"
note "ok: nbd source with --lease: $(cat "$T/err")"
note "all lockd lease checks passed"
