#!/bin/bash
# imgfuse-test: serial (a guest, a fixed port or socket, or daemon timing)
# Interop with libvirt's real virtlockd: a small TCG guest (no OS; SeaBIOS
# idles) run by virt-qemu-run with lock_manager = "lockd" and its
# file_lockspace_dir set to our lockspace directory. While the guest runs,
# imgfuse --lease=lockd on the same directory is refused (naming the lease
# and virtlockd's pid), by the lease alone (--locking=off); a read-only
# mount is let in. While imgfuse holds the image, the guest fails to start
# with virtlockd's "resource busy"; after the unmount it starts.
# virtlockd's socket is fixed (/run/libvirt/virtlockd-sock): one per machine.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lease-lib.sh"

S=$T/lv
mkdir -p "$S/root/etc" "$S/lockspace" "$S/vm"
VQR=
stop_pid() {
    local p=$1 i
    kill "$p" 2>/dev/null || return 0
    for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done
    kill -9 "$p" 2>/dev/null || true
}
stop_all() {
    [ -n "$VQR" ] && stop_pid "$VQR"
    [ -s "$S/virtlockd.pid" ] && stop_pid "$(cat "$S/virtlockd.pid")"
}
trap 'stop_all; _cleanup' EXIT

SOCK=/run/libvirt/virtlockd-sock
if [ -S $SOCK ] && python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' $SOCK 2>/dev/null; then
    fail "another virtlockd already listens on $SOCK; stop it first"
fi
cat > "$S/root/etc/qemu.conf" <<EOF2
lock_manager = "lockd"
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "file"
namespaces = [ ]
EOF2
cat > "$S/root/etc/qemu-lockd.conf" <<EOF2
auto_disk_leases = 1
require_lease_for_disks = 1
file_lockspace_dir = "$S/lockspace"
EOF2
IMG=$S/vm/disk.qcow2
qemu-img create -q -f qcow2 "$IMG" 16M
cat > "$S/dom.xml" <<EOF2
<domain type='qemu'>
  <name>imgfuse-lease-$$</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='$IMG'/><target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
EOF2
LEASE_FILE=$S/lockspace/$(lease_name "$IMG")

virtlockd -d -p "$S/virtlockd.pid" || fail "virtlockd did not start"
for i in $(seq 1 200); do [ -S $SOCK ] && [ -s "$S/virtlockd.pid" ] && break; sleep 0.05; done
[ -S $SOCK ] || fail "virtlockd's socket $SOCK did not appear"
VL=$(cat "$S/virtlockd.pid")

# start_guest: 0 once the guest runs (virt-qemu-run stays in the foreground)
start_guest() {
    rm -f "$S/start.log"
    virt-qemu-run --root "$S/root" --verbose "$S/dom.xml" > "$S/start.log" 2>&1 &
    VQR=$!
    for i in $(seq 1 1200); do
        grep -q 'guest running' "$S/start.log" 2>/dev/null && return 0
        kill -0 "$VQR" 2>/dev/null || { wait "$VQR" 2>/dev/null || true; VQR=; return 1; }
        sleep 0.05
    done
    fail "the guest neither ran nor failed in 60 s: $(tail -3 "$S/start.log")"
}
stop_guest() { stop_pid "$VQR"; wait "$VQR" 2>/dev/null || true; VQR=; }

start_guest || fail "the guest did not start: $(tail -5 "$S/start.log")"
expect_eq "$(getlk "$LEASE_FILE")" "F_WRLCK $VL" "the guest's lease, held by virtlockd"
rc=0
"$IMGFUSE" --locking=off --lease=lockd,dir="$S/lockspace" "$IMG" "$T/m" 2>"$T/err" || rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "imgfuse mounted the running guest's disk (rc $rc)"
grep -q "disk.qcow2: the lockd lease $LEASE_FILE is held exclusively by pid $VL" "$T/err" ||
    fail "refusal message: $(cat "$T/err")"
! is_mounted "$T/m" || fail "mounted after a refusal"
note "ok: refused while the guest runs: $(cat "$T/err")"
mount_img --locking=off -r --lease=lockd,dir="$S/lockspace" "$IMG" "$T/m" ||
    fail "read-only mount refused"
unmount_img "$T/m"
stop_guest
[ ! -e "$LEASE_FILE" ] || fail "virtlockd kept the lease file after the guest stopped"

mount_img --locking=off --lease=lockd,dir="$S/lockspace" "$IMG" "$T/m" ||
    fail "imgfuse refused after the guest stopped"
if start_guest; then
    fail "the guest started while imgfuse holds its disk's lease"
fi
grep -q "resource busy: Lockspace resource '$(lease_name "$IMG")' is locked" "$S/start.log" ||
    fail "the guest failed, but not on the lease: $(tail -3 "$S/start.log")"
note "ok: the guest refused: $(grep -o "resource busy.*" "$S/start.log" | head -1)"
unmount_img "$T/m"
start_guest || fail "the guest did not start after the unmount: $(tail -5 "$S/start.log")"
stop_guest
note "ok: the guest started after the unmount"
