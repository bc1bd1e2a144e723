#!/bin/bash
# Unmount paths: fusermount3 -u, umount, SIGTERM, SIGINT each flush, drop
# the locks and exit 0; -f stays in the foreground; touch/chmod work.
. "$(dirname "$0")/../lib.sh"

img=$T/d.img
qemu-img create -q -f raw "$img" 8M

for how in fusermount umount TERM INT; do
    mnt=$T/m-$how
    "$IMGFUSE" -f --pidfile "$T/pid" "$img" "$mnt" 2>"$T/err" &
    daemon=$!
    for i in $(seq 100); do [ -s "$T/pid" ] && break; sleep 0.05; done
    [ -s "$T/pid" ] || fail "$how: never became live: $(cat "$T/err")"
    expect_eq "$(cat "$T/pid")" "$daemon" "$how: pidfile content"
    printf "$how" | dd of="$mnt" conv=notrunc status=none
    case $how in
        fusermount) fusermount3 -u "$mnt" ;;
        umount) umount "$mnt" ;;
        *) kill -$how "$daemon" ;;
    esac
    wait "$daemon"; rc=$?
    expect_eq "$rc" 0 "$how: exit status"
    is_mounted "$mnt" && fail "$how: still mounted"
    [ -e "$T/pid" ] && fail "$how: pidfile left"
    expect_eq "$(head -c ${#how} "$img")" "$how" "$how: data flushed"
    # the write lock is gone: QEMU may write now
    qemu-io -f raw -c 'write 4096 512' "$img" >/dev/null || fail "$how: lock not released"
done

# attributes: touch and chmod work, mtime moves on write
mount_img "$img" "$T/attr"
touch -d '2001-02-03 04:05:06' "$T/attr"
expect_eq "$(stat -c %Y "$T/attr")" "$(date -d '2001-02-03 04:05:06' +%s)" "touch -d"
chmod 600 "$T/attr"
expect_eq "$(stat -c %a "$T/attr")" 600 "chmod"
before=$(stat -c %Y "$T/attr")
printf 'x' | dd of="$T/attr" conv=notrunc status=none
sleep 1.1
after=$(stat -c %Y "$T/attr")
[ "$after" -gt "$before" ] || fail "mtime did not change on write ($before -> $after)"
expect_eq "$(stat -c %B "$T/attr")" 512 "st_blocks unit"
unmount_img "$T/attr"
echo ok
