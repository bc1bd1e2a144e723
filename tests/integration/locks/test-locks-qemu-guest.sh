#!/bin/bash
# imgfuse-test: serial (a QEMU guest with timing)
# imgfuse against a real QEMU virtual machine's disk on a raw image, both
# directions: a VM's disk (paused, no guest code runs) without share-rw,
# with share-rw=on and with readonly=on, versus imgfuse rw, -r, -U and
# --share-rw. The guest device is what turns QEMU's raw image exclusive for
# writers, and share-rw is a device property, so qemu-io cannot show this.
. "$(dirname "$0")/../lib.sh"

IMG=$T/disk.img
M1=$T/m1
M2=$T/m2
VM_PIDS=()

qemu-img create -q -f raw "$IMG" 4M
qemu-io -f raw -c 'write -P 0x5a 0 1M' "$IMG" >/dev/null
WANT=$(sha "$IMG")

stop_vms() {
    local p
    for p in "${VM_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        while kill -0 "$p" 2>/dev/null &&
              [ "$(awk '{print $3}' /proc/"$p"/stat 2>/dev/null)" != Z ]; do
            sleep 0.02
        done
    done
    VM_PIDS=()
}
trap 'stop_vms; _cleanup' EXIT

# vm DRIVE-OPTS DEVICE-OPTS: start a paused VM with one disk; -daemonize
# returns once the devices are realized, that is after QEMU took its locks,
# with a non-zero status when it could not. Output in $T/vm.out.
vm() {
    local n=${#VM_PIDS[@]} rc=0
    qemu-system-x86_64 -M q35 -accel tcg -nodefaults -display none -S \
        -daemonize -pidfile "$T/vm$n.pid" \
        -drive "file=$IMG,format=raw,if=none,id=d$1" \
        -device "virtio-blk-pci,drive=d$2" >"$T/vm.out" 2>&1 || rc=$?
    [ $rc -ne 0 ] || VM_PIDS+=("$(cat "$T/vm$n.pid")")
    return $rc
}

vm_ok() {
    local what=$1; shift
    vm "$@" || fail "$what: QEMU refused: $(cat "$T/vm.out")"
    note "ok: $what"
}

vm_refused() {
    local what=$1 msg=$2; shift 2
    ! vm "$@" || fail "$what: QEMU started"
    grep -qF -- "$msg" "$T/vm.out" ||
        fail "$what: expected '$msg', got: $(cat "$T/vm.out")"
    note "refused as expected: $what"
}

mount_ok() {
    local what=$1 mnt=$2; shift 2
    mount_img "$@" "$IMG" "$mnt" 2>"$T/mnt.err" ||
        fail "$what: imgfuse refused: $(cat "$T/mnt.err")"
    expect_eq "$(sha "$mnt")" "$WANT" "$what: content through the mount"
    note "ok: $what"
}

mount_refused() {
    local what=$1 msg=$2 rc=0 mnt=$T/refused; shift 2
    rm -f "$mnt"
    mount_img "$@" "$IMG" "$mnt" 2>"$T/mnt.err" || rc=$?
    [ $rc -ne 0 ] || fail "$what: imgfuse mounted"
    grep -qF -- "$msg" "$T/mnt.err" ||
        fail "$what: expected '$msg', got: $(cat "$T/mnt.err")"
    ! is_mounted "$mnt" || fail "$what: left a mount behind"
    note "refused as expected: $what"
}

RW_HINT="mount read-only with -r, or use -U (force-share) to read without locking"
RO_HINT="use -U (force-share) to read without locking"

echo "a VM writes the disk (no share-rw)"
vm_ok "VM, raw disk" "" ""
mount_refused "imgfuse rw" "disk.img: in use by another process that holds write permission and does not share it; $RW_HINT"
mount_refused "imgfuse -r" "disk.img: in use by another process that holds write permission; $RO_HINT" -r
mount_refused "imgfuse --share-rw" "disk.img: in use by another process that does not share write permission" --share-rw
mount_ok "imgfuse -U" "$M1" -U
unmount_img "$M1"
stop_vms

echo "a VM writes the disk with share-rw=on"
vm_ok "VM, raw disk, share-rw=on" "" ",share-rw=on"
mount_ok "imgfuse --share-rw" "$M1" --share-rw
mount_ok "imgfuse -r --share-rw" "$M2" -r --share-rw
unmount_img "$M2"
mount_refused "imgfuse rw" "holds write permission and does not share resize permission; $RW_HINT"
unmount_img "$M1"
stop_vms

echo "a VM reads the disk (readonly=on)"
vm_ok "VM, raw disk, readonly=on" ",readonly=on" ""
mount_ok "imgfuse -r" "$M1" -r
unmount_img "$M1"
mount_refused "imgfuse rw" "does not share write permission; $RW_HINT"
stop_vms

echo "imgfuse writes the disk"
mount_ok "imgfuse rw" "$M1"
vm_refused "VM" 'Failed to get "write" lock' "" ""
vm_refused "VM, share-rw=on" 'Failed to get "write" lock' "" ",share-rw=on"
vm_refused "VM, readonly=on" 'Failed to get shared "write" lock' ",readonly=on" ""
unmount_img "$M1"

echo "imgfuse --share-rw writes the disk"
mount_ok "imgfuse --share-rw" "$M1" --share-rw
vm_ok "VM, share-rw=on" "" ",share-rw=on"
vm_refused "VM without share-rw" 'Failed to get shared "write" lock' "" ""
stop_vms
unmount_img "$M1"

echo "imgfuse -r reads the disk"
mount_ok "imgfuse -r" "$M1" -r
vm_ok "VM, readonly=on" ",readonly=on" ""
vm_refused "VM" 'Failed to get "write" lock' "" ""
stop_vms
unmount_img "$M1"
echo "VM locks: all cases passed"
