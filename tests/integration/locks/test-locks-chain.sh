#!/bin/bash
# Every image of a chain is locked: a qcow2 overlay mounted read-write holds
# its own file read-write and its raw backing file read-only (consistent
# read, sharing neither write nor resize), so nobody may write the backing
# file under it, while other overlays of the same base still mount. Checked
# against qemu-io in both directions.
. "$(dirname "$0")/../lib.sh"

BASE=$T/base.raw
TOP=$T/top.qcow2
TOP2=$T/top2.qcow2
M1=$T/m1
M2=$T/m2
BG=()

qemu-img create -q -f raw "$BASE" 4M
qemu-io -f raw -c 'write -P 0x5a 0 2M' "$BASE" >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw "$TOP"
qemu-img create -q -f qcow2 -b base.raw -F raw "$TOP2"
qemu-io -f qcow2 -c 'write -P 0xa5 1M 64k' "$TOP" >/dev/null
WANT_TOP=$(qemu_raw_sha "$TOP" qcow2)
WANT_BASE=$(sha "$BASE")

kill_bg() {
    local p
    for p in "${BG[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    BG=()
}
trap 'kill_bg; _cleanup' EXIT

# held FILE: the OFD lock byte ranges on FILE, "100-101 103-103 ...".
held() {
    awk -v ino=":$(stat -c %i "$1")" '$2 == "OFDLCK" && index($6, ino) &&
        substr($6, length($6) - length(ino) + 1) == ino {print $7 "-" $8}' \
        /proc/locks | sort -n | paste -sd' '
}

wait_held() {
    local i
    for i in $(seq 1 100); do
        [ "$(held "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    fail "$3: lock bytes on $1 '$(held "$1")', expected '$2'"
}

mount_ok() {
    local what=$1 img=$2 mnt=$3 want=$4; shift 4
    mount_img "$@" "$img" "$mnt" 2>"$T/mnt.err" ||
        fail "$what: imgfuse refused: $(cat "$T/mnt.err")"
    expect_eq "$(sha "$mnt")" "$want" "$what: content through the mount"
    note "ok: $what"
}

mount_refused() {
    local what=$1 img=$2 msg=$3 rc=0 mnt=$T/refused; shift 3
    rm -f "$mnt"
    mount_img "$@" "$img" "$mnt" 2>"$T/mnt.err" || rc=$?
    [ $rc -ne 0 ] || fail "$what: imgfuse mounted"
    grep -qF -- "$msg" "$T/mnt.err" ||
        fail "$what: expected '$msg', got: $(cat "$T/mnt.err")"
    ! is_mounted "$mnt" || fail "$what: left a mount behind"
    note "refused as expected: $what"
}

qemu_io_refused() {
    local what=$1 msg=$2 rc=0; shift 2
    qemu-io "$@" >"$T/qio.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] || fail "$what: qemu-io was let in: $(cat "$T/qio.out")"
    grep -qF -- "$msg" "$T/qio.out" ||
        fail "$what: expected '$msg', got: $(cat "$T/qio.out")"
    note "refused as expected: $what"
}

qemu_io_ok() {
    local what=$1 rc=0; shift
    qemu-io "$@" >"$T/qio.out" 2>&1 || rc=$?
    [ $rc -eq 0 ] && ! grep -q "Failed to get" "$T/qio.out" ||
        fail "$what: qemu-io refused: $(cat "$T/qio.out")"
    note "ok: $what"
}

echo "imgfuse writes the overlay"
mount_ok "imgfuse rw overlay" "$TOP" "$M1" "$WANT_TOP"
expect_eq "$(held "$TOP")" "100-101 103-103 201-201 203-203" "overlay lock bytes"
expect_eq "$(held "$BASE")" "100-100 201-201 203-203" "backing file lock bytes"
qemu_io_refused "qemu-io writing the backing file" 'Failed to get "write" lock' \
    -f raw -c 'write 0 512' "$BASE"
qemu_io_ok "qemu-io reading the backing file" -r -f raw -c 'read 0 512' "$BASE"
mount_refused "imgfuse rw on the backing file" "$BASE" \
    "base.raw: in use by another process that does not share write, resize permissions"
mount_ok "imgfuse -r on the backing file" "$BASE" "$M2" "$WANT_BASE" -r
unmount_img "$M2"
mount_ok "imgfuse rw on a second overlay of the same base" "$TOP2" "$M2" "$WANT_BASE"
unmount_img "$M2"
unmount_img "$M1"
expect_eq "$(held "$TOP")" "" "overlay lock bytes after unmount"
expect_eq "$(held "$BASE")" "" "backing lock bytes after unmount"

echo "qemu-io writes the backing file"
qemu-io -f raw -c 'sleep 60000' "$BASE" >/dev/null 2>&1 &
BG+=($!)
wait_held "$BASE" "100-101" "qemu-io writer"
mount_refused "imgfuse rw overlay" "$TOP" \
    "backing file 'base.raw': $BASE: in use by another process that holds write permission; use -U (force-share) to read without locking"
mount_refused "imgfuse -r overlay" "$TOP" \
    "$BASE: in use by another process that holds write permission" -r
mount_ok "imgfuse -U overlay" "$TOP" "$M1" "$WANT_TOP" -U
expect_eq "$(held "$TOP")" "" "-U overlay takes nothing"
expect_eq "$(held "$BASE")" "100-101" "-U leaves only qemu-io's bytes"
unmount_img "$M1"
kill_bg

echo "qemu-io writes one overlay"
qemu-io -f qcow2 -c 'sleep 60000' "$TOP" >/dev/null 2>&1 &
BG+=($!)
wait_held "$TOP" "100-101 103-103 201-201 203-203" "qemu-io overlay writer"
mount_refused "imgfuse rw on the same overlay" "$TOP" \
    "top.qcow2: in use by another process that holds write, resize permissions and does not share them"
mount_refused "imgfuse -r on the same overlay" "$TOP" \
    "top.qcow2: in use by another process that holds write, resize permissions; use -U (force-share)" -r
mount_ok "imgfuse rw on the other overlay" "$TOP2" "$M1" "$WANT_BASE"
unmount_img "$M1"
kill_bg
echo "chain locks: all cases passed"
