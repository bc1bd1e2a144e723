#!/bin/bash
# imgfuse-test: serial (a guest, a fixed port or socket, or daemon timing)
# lockd leases between two "hosts" that share a GlusterFS volume: two mount
# namespaces, each with its own glusterfs FUSE client of the volume at the
# same path, holding the images and the lockspace directory. The POSIX
# locks reach the other host only through gluster's locks translator. Host
# B's read-write mount is refused while A holds the image (by the lease
# alone: B runs with --locking=off), a read-only one is let in, and after
# A's imgfuse is killed -9 (gluster drops the dead client's locks) B gets in;
# then A is refused in turn, and gets in after B's unmount.
# (Network namespaces are not used: glusterd listens on a loopback address.)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../gluster/gluster-lib.sh"
. "$(dirname "$0")/lease-lib.sh"
trap 'hosts_stop; _cleanup; _gl_stop_all' EXIT

gl_start
VIEW=$T/view
mkdir -p "$VIEW"
for h in A B; do
    host_start $h glusterfs --volfile-server="$GL_IP" --volfile-id="$GL_VOL" \
        --direct-io-mode=enable --attribute-timeout=0 --entry-timeout=0 \
        --log-file="$GL_S/log/fuse-$h.log" "$VIEW"
    for i in $(seq 1 100); do
        on $h mountpoint -q "$VIEW" && break
        [ "$i" = 100 ] && fail "host $h: the glusterfs mount did not come up"
        sleep 0.1
    done
done
# the images, made through the test's own gluster view
qemu-img create -q -f raw "$GL_S/vol/disk.raw" 4M
qemu-io -f raw -c 'write -P 0x33 0 64k' "$GL_S/vol/disk.raw" >/dev/null
IMG=$VIEW/disk.raw
LS=$VIEW/lockspace
LEASE="--lease=lockd,dir=$LS"
LEASE_FILE=$GL_S/vol/lockspace/$(lease_name "$IMG")

host_mount A "$LEASE" "$IMG" "$T/a.raw"
PA=$(host_daemon A "$T/a.raw")
[ -f "$LEASE_FILE" ] || fail "no lease file on the volume: $(ls -la "$GL_S/vol/lockspace")"
on A sh -c "printf 'from A' | dd of=$T/a.raw conv=notrunc,fsync status=none"
mount_refused_on B "host B, read-write, while A holds the lease" \
    "disk.raw: the lockd lease $LS/$(lease_name "$IMG") is held exclusively" \
    --locking=off "$LEASE" "$IMG" "$T/b.raw"
host_mount B --locking=off -r "$LEASE" "$IMG" "$T/b.raw"
expect_eq "$(on B head -c 6 "$T/b.raw")" "from A" "host B's read-only view"
host_umount B "$T/b.raw"
note "ok: read-only mount on host B allowed"

kill -9 "$PA"
wait_exit "$PA"
on A umount -l "$T/a.raw" 2>/dev/null || true
for i in $(seq 1 100); do          # gluster drops the dead client's lock
    host_mount B --locking=off "$LEASE" "$IMG" "$T/b.raw" 2>"$T/err" && break
    [ "$i" = 100 ] && fail "host B still refused 10 s after A's kill -9: $(cat "$T/err")"
    sleep 0.1
done
note "ok: host B got in after A's imgfuse was killed -9 (try $i)"
mount_refused_on A "host A, read-write, while B holds the lease" "is held exclusively" \
    --locking=off "$LEASE" "$IMG" "$T/a.raw"
host_umount B "$T/b.raw"
host_mount A --locking=off "$LEASE" "$IMG" "$T/a.raw"
host_umount A "$T/a.raw"
note "ok: host A got in after B's unmount"
