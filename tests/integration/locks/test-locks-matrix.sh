#!/bin/bash
# The lock matrix on a raw image against real QEMU, in both directions:
# imgfuse rw / -r / --share-rw / -U / --locking=off mounted while qemu-io,
# qemu-storage-daemon and other imgfuse mounts try to open the image, and
# imgfuse mounting while QEMU holds it. Checks exit status, message, the
# bytes in /proc/locks, and that a refused mount leaves nothing behind.
. "$(dirname "$0")/../lib.sh"

IMG=$T/disk.img
M1=$T/m1
M2=$T/m2
QSD_MNT=$T/qsd-export
BG=()

qemu-img create -q -f raw "$IMG" 4M
qemu-io -f raw -c 'write -P 0x5a 0 1M' "$IMG" >/dev/null
WANT=$(sha "$IMG")
INO=$(stat -c %i "$IMG")

kill_bg() {
    local p
    for p in "${BG[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    BG=()
}
trap 'kill_bg; _cleanup' EXIT

# The byte ranges of the OFD locks on the image, "100-101 103-103 ...".
held() {
    awk -v ino=":$INO" '$2 == "OFDLCK" && index($6, ino) &&
        substr($6, length($6) - length(ino) + 1) == ino {print $7 "-" $8}' \
        /proc/locks | sort -n | paste -sd' '
}

expect_held() {
    expect_eq "$(held)" "$1" "lock bytes $2"
}

wait_held() {
    local i
    for i in $(seq 1 100); do
        [ "$(held)" = "$1" ] && return 0
        sleep 0.05
    done
    fail "$2: lock bytes '$(held)', expected '$1'"
}

# qemu_io_ok WHAT ARGS...: qemu-io opens the image and runs its command.
qemu_io_ok() {
    local what=$1 rc=0; shift
    qemu-io "$@" >"$T/qio.out" 2>&1 || rc=$?
    [ $rc -eq 0 ] || fail "$what: qemu-io exit $rc: $(cat "$T/qio.out")"
    ! grep -q "Failed to get" "$T/qio.out" ||
        fail "$what: qemu-io refused: $(cat "$T/qio.out")"
    note "ok: $what"
}

# qemu_io_refused WHAT MESSAGE ARGS...
qemu_io_refused() {
    local what=$1 msg=$2 rc=0; shift 2
    qemu-io "$@" >"$T/qio.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] || fail "$what: qemu-io was let in: $(cat "$T/qio.out")"
    grep -qF -- "$msg" "$T/qio.out" ||
        fail "$what: expected '$msg', got: $(cat "$T/qio.out")"
    note "refused as expected: $what"
}

# mount_ok WHAT MNT ARGS...: imgfuse mounts and shows the image's bytes.
mount_ok() {
    local what=$1 mnt=$2; shift 2
    mount_img "$@" "$IMG" "$mnt" 2>"$T/mnt.err" ||
        fail "$what: imgfuse refused: $(cat "$T/mnt.err")"
    is_mounted "$mnt" || fail "$what: not mounted"
    expect_eq "$(sha "$mnt")" "$WANT" "$what: content through the mount"
    note "ok: $what"
}

# mount_refused WHAT MESSAGE ARGS...: non-zero exit, the message on stderr,
# nothing mounted, no daemon left behind, the image untouched.
mount_refused() {
    local what=$1 msg=$2 rc=0 mnt=$T/refused; shift 2
    rm -f "$mnt"
    mount_img "$@" "$IMG" "$mnt" 2>"$T/mnt.err" || rc=$?
    [ $rc -ne 0 ] || fail "$what: imgfuse mounted"
    grep -qF -- "$msg" "$T/mnt.err" ||
        fail "$what: expected '$msg', got: $(cat "$T/mnt.err")"
    ! is_mounted "$mnt" || fail "$what: left a mount behind"
    ! pgrep -f -- "$mnt" >/dev/null || fail "$what: left a process behind"
    expect_eq "$(sha "$IMG")" "$WANT" "$what: image content"
    note "refused as expected: $what"
}

start_qemu_io_writer() {
    qemu-io -f raw -c 'sleep 60000' "$IMG" >/dev/null 2>&1 &
    BG+=($!)
    wait_held "100-101" "qemu-io writer"
}

start_qsd_export() {
    : >"$QSD_MNT"
    qemu-storage-daemon --blockdev "driver=file,node-name=f,filename=$IMG" \
        --export "type=fuse,id=e,node-name=f,mountpoint=$QSD_MNT,writable=on" \
        >/dev/null 2>&1 &
    BG+=($!)
    wait_held "100-101 103-103" "qemu-storage-daemon writable export"
}

RW_HINT="mount read-only with -r, or use -U (force-share) to read without locking"
RO_HINT="use -U (force-share) to read without locking"
QEMU_W='Failed to get "write" lock'

echo "imgfuse read-write holds the image"
mount_ok "imgfuse rw" "$M1"
expect_held "100-101 103-103 201-201 203-203" "of a read-write mount"
qemu_io_refused "qemu-io write" "$QEMU_W" -f raw -c 'write 0 512' "$IMG"
# QEMU's raw reader shares write (it takes byte 100 only), so QEMU itself
# lets it read next to a writer; a qcow2 reader would refuse.
qemu_io_ok "qemu-io -r read" -r -f raw -c 'read 0 512' "$IMG"
qemu_io_ok "qemu-io -U read" -U -r -f raw -c 'read 0 512' "$IMG"
qemu-img info "$IMG" >/dev/null || fail "qemu-img info refused"
rc=0
: >"$QSD_MNT"
qemu-storage-daemon --blockdev "driver=file,node-name=f,filename=$IMG" \
    --export "type=fuse,id=e,node-name=f,mountpoint=$QSD_MNT,writable=on" \
    >"$T/qsd.out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "qemu-storage-daemon exported the image"
grep -qF "$QEMU_W" "$T/qsd.out" || fail "qsd: $(cat "$T/qsd.out")"
note "refused as expected: qemu-storage-daemon writable export"
mount_refused "second imgfuse rw" "disk.img: in use by another process that holds write, resize permissions and does not share them; $RW_HINT"
mount_refused "second imgfuse -r" "disk.img: in use by another process that holds write, resize permissions; $RO_HINT" -r
mount_refused "second imgfuse --share-rw" "does not share write permission" --share-rw
mount_ok "imgfuse -U next to a writer" "$M2" -U
expect_held "100-101 103-103 201-201 203-203" "with a -U mount added"
unmount_img "$M2"
unmount_img "$M1"
expect_held "" "after unmounting"
qemu_io_ok "qemu-io write after unmount" -f raw -c 'write -P 0x5a 0 512' "$IMG"

echo "imgfuse read-only holds the image"
mount_ok "imgfuse -r" "$M1" -r
expect_held "100-100 201-201 203-203" "of a read-only mount"
qemu_io_refused "qemu-io write" "$QEMU_W" -f raw -c 'write 0 512' "$IMG"
qemu_io_ok "qemu-io -r read" -r -f raw -c 'read 0 512' "$IMG"
mount_ok "second imgfuse -r" "$M2" -r
unmount_img "$M2"
mount_refused "imgfuse rw" "disk.img: in use by another process that does not share write, resize permissions; $RW_HINT"
unmount_img "$M1"

echo "qemu-io writes the image"
start_qemu_io_writer
mount_refused "imgfuse rw" "disk.img: in use by another process that holds write permission; $RW_HINT"
mount_refused "imgfuse -r" "disk.img: in use by another process that holds write permission; $RO_HINT" -r
mount_ok "imgfuse -U" "$M1" -U
expect_held "100-101" "qemu-io's alone: -U takes nothing"
unmount_img "$M1"
# qemu-io on raw shares write and holds no resize: a share-rw mount fits
mount_ok "imgfuse --share-rw" "$M1" --share-rw
unmount_img "$M1"
mount_ok "imgfuse --locking=off" "$M1" --locking=off
expect_held "100-101" "qemu-io's alone: --locking=off takes nothing"
unmount_img "$M1"
kill_bg

echo "qemu-storage-daemon exports the image writable"
start_qsd_export
mount_refused "imgfuse rw" "disk.img: in use by another process that holds write, resize permissions; $RW_HINT"
mount_refused "imgfuse -r" "disk.img: in use by another process that holds write, resize permissions; $RO_HINT" -r
mount_ok "imgfuse -U" "$M1" -U
unmount_img "$M1"
kill_bg
wait_held "" "after qemu-storage-daemon ended"

echo "imgfuse --share-rw"
mount_ok "imgfuse --share-rw" "$M1" --share-rw
expect_held "100-101 203-203" "of a share-rw mount"
mount_ok "second imgfuse --share-rw" "$M2" --share-rw
qemu_io_ok "qemu-io write next to share-rw" -f raw -c 'write -P 0x5a 0 512' "$IMG"
mount_refused "imgfuse rw" "disk.img: in use by another process that holds write permission and does not share resize permission; $RW_HINT"
mount_refused "imgfuse -r" "holds write permission; $RO_HINT" -r
unmount_img "$M2"
mount_ok "imgfuse -r --share-rw" "$M2" -r --share-rw
unmount_img "$M2"
unmount_img "$M1"

echo "imgfuse --locking=off and -U take nothing"
mount_ok "imgfuse --locking=off" "$M1" --locking=off
expect_held "" "of a --locking=off mount"
qemu_io_ok "qemu-io write next to --locking=off" -f raw -c 'write -P 0x5a 0 512' "$IMG"
unmount_img "$M1"
mount_ok "imgfuse -o locking=off" "$M1" -o locking=off
expect_held "" "of a -o locking=off mount"
unmount_img "$M1"
mount_ok "imgfuse -U" "$M1" -U
expect_held "" "of a -U mount"
qemu_io_ok "qemu-io write next to -U" -f raw -c 'write -P 0x5a 0 512' "$IMG"
unmount_img "$M1"
expect_held "" "at the end"
echo "lock matrix: all cases passed"
