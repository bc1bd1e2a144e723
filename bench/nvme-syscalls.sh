#!/bin/bash
# Structural bench for nvme:// (issue 13): system calls the imgfuse daemon
# makes per 4 KiB O_DIRECT read, counted with strace -c -f in a TCG guest,
# for the same emulated namespace mounted as /dev/nvme0n1 (host_device,
# the kernel's nvme driver) and as nvme:// (our driver over vfio-pci).
# Under TCG there is no honest speed figure; the claim checked is that the
# nvme path makes no read/pread system call per request.
# usage: bench/nvme-syscalls.sh [READS]   (default 1000)
# Prints a table of calls per read; exits 1 when the nvme path has any
# pread64, preadv or io_uring_enter call per read (read and writev are
# FUSE's: the request from /dev/fuse and the reply to it, on both paths).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
READS=${1:-1000}
bench_tmp nvme "${TMPDIR:-/tmp}"
fail() { echo "bench: $*" >&2; exit 1; }
note() { echo "  $*" >&2; }
. "$ROOT/tests/integration/nvme/guest-lib.sh"
command -v strace >/dev/null || fail "strace is missing; apt-get install strace"
nvme_guest_kernel

cat > "$T/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys
mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
. /etc/bench.env
for m in /mods/*.ko; do insmod "$m"; done
i=0
while [ $i -lt 100 ] && { [ ! -b /dev/nvme0n1 ] || [ ! -c /dev/fuse ]; }; do sleep 0.1; i=$((i + 1)); done
for d in /sys/bus/pci/devices/*; do [ "$(cat $d/class)" = 0x010802 ] && BDF=$(basename $d); done
# measure NAME SOURCE: strace -c on the daemon while dd reads READS blocks
measure() {
    imgfuse -r -F raw --pidfile /tmp/pid "$2" /tmp/m.raw || { echo "NVBENCH-FAIL $1 mount"; return; }
    pid=$(cat /tmp/pid)
    dd if=/tmp/m.raw of=/dev/null bs=4096 count=64 iflag=direct 2>/dev/null
    strace -c -f -q -p "$pid" -o /tmp/s.txt & spid=$!
    sleep 2
    t0=$(cut -d' ' -f1 /proc/uptime)
    dd if=/tmp/m.raw of=/dev/null bs=4096 count=$READS skip=128 iflag=direct 2>/dev/null
    t1=$(cut -d' ' -f1 /proc/uptime)
    sleep 0.5
    kill -INT $spid; wait $spid
    echo "NVBENCH $1 time $t0 $t1"
    sed "s/^/NVBENCH $1 /" /tmp/s.txt
    umount /tmp/m.raw; sleep 0.5
}
measure host_device /dev/nvme0n1
echo "$BDF" > /sys/bus/pci/devices/$BDF/driver/unbind
echo vfio-pci > /sys/bus/pci/devices/$BDF/driver_override
echo "$BDF" > /sys/bus/pci/drivers_probe
measure nvme nvme://$BDF/1
echo NVBENCH-DONE
poweroff -f
INIT
truncate -s 64M "$T/ns.img"
nvme_guest_initrd "$T/initrd" "$T/init" "$(command -v strace)"
echo "READS=$READS" > "$T/initrd/etc/bench.env"
nvme_guest_pack "$T/initrd"
nvme_guest_run "$T/console.log" 600 "$T/initrd.cpio" \
    -drive "file=$T/ns.img,if=none,id=n1,format=raw" \
    -device nvme,id=nvme0,serial=bench,drive=n1 >"$T/qemu.out" 2>&1 ||
    { cat "$T/qemu.out"; tail -40 "$T/console.log"; fail "the guest failed"; }
grep -aq '^NVBENCH-DONE' "$T/console.log" || { tail -40 "$T/console.log"; fail "the guest did not finish"; }

# calls NAME SYSCALL: strace's count for it, 0 when absent
calls() {
    tr -d '\r' < "$T/console.log" |
        awk -v n="$1" -v s="$2" '$1 == "NVBENCH" && $2 == n && $NF == s { c = $(NF-1); if ($(NF-2) ~ /^[0-9]+$/ && NF == 8) c = $(NF-2); print c; f = 1 } END { if (!f) print 0 }'
}
secs() {
    tr -d '\r' < "$T/console.log" | awk -v n="$1" '$1 == "NVBENCH" && $2 == n && $3 == "time" { print $5 - $4 }'
}
echo "## nvme:// against host_device: daemon system calls per 4 KiB O_DIRECT read ($READS reads, TCG guest)"
echo
echo "| syscall | host_device (/dev/nvme0n1) | nvme:// (vfio-pci) |"
echo "|---|---|---|"
bad=0
for s in read pread64 preadv preadv2 io_uring_enter writev write ioctl sched_yield futex total; do
    a=$(calls host_device "$s"); b=$(calls nvme "$s")
    [ "$a" = 0 ] && [ "$b" = 0 ] && continue
    printf '| %s | %s | %s |\n' "$s" "$(echo "scale=2; $a / $READS" | bc)" "$(echo "scale=2; $b / $READS" | bc)"
    case $s in pread64|preadv|preadv2|io_uring_enter)
        [ "$(echo "$b / $READS >= 0.5" | bc)" = 0 ] || bad=1 ;;
    esac
done
echo
echo "read and writev are FUSE's own (each request read from /dev/fuse, each reply written); sched_yield is the nvme queue's polling."
echo
echo "guest seconds for the reads (TCG, under strace; not a speed figure): host_device $(secs host_device), nvme $(secs nvme)"
[ $bad = 0 ] || fail "the nvme path makes read-type system calls per request"
