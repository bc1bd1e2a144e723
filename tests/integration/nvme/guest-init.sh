#!/bin/sh
# /init of the guest that test-nvme-guest.sh boots: an emulated NVMe
# controller behind an emulated intel-iommu, with namespace 1 (raw data,
# 512-byte blocks) and 2 (a qcow2 image, 4096-byte blocks). It checks the
# error for a controller still bound to the kernel's nvme driver, hands the
# controller to vfio-pci, then runs this imgfuse on nvme:// and prints one
# line per check, "NVTEST <check> OK|FAIL ...". The host checks those lines
# and, after poweroff, the backing files.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
. /etc/nvtest.env
echo "NVTEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)"

ok() { echo "NVTEST $1 OK${2:+: $2}"; }
bad() { echo "NVTEST $1 FAIL: $2"; }
mounted() { grep -q " $1 fuse" /proc/mounts; }
alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
        [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}
unmount() {
    pid=$(cat "$2" 2>/dev/null)
    umount "$1" || { bad unmount "umount $1 failed"; return 1; }
    i=0
    while [ $i -lt 200 ] && alive "$pid"; do sleep 0.05; i=$((i + 1)); done
    ! alive "$pid" || { bad unmount "imgfuse (pid $pid) still runs"; return 1; }
}
# expect_refused CHECK PATTERN imgfuse-args...
expect_refused() {
    check=$1 pat=$2; shift 2
    if imgfuse "$@" > /tmp/out 2>&1; then
        bad "$check" "imgfuse $* succeeded"
    elif ! grep -qF -- "$pat" /tmp/out; then
        bad "$check" "message lacks '$pat': $(tr '\n' '|' < /tmp/out)"
    else
        ok "$check" "$(tr '\n' '|' < /tmp/out)"
    fi
}
# range_sha FILE OFFSET LENGTH (64 KiB units)
range_sha() { dd if="$1" bs=65536 skip="$2" count="$3" 2>/dev/null | sha256sum | cut -d' ' -f1; }
zero_sha() { dd if=/dev/zero bs=65536 count="$1" 2>/dev/null | sha256sum | cut -d' ' -f1; }

for m in /mods/*.ko; do insmod "$m" || bad insmod "$m"; done
# the controller under test has serial nvtest01; two more (nvgroup*) share
# an IOMMU group behind a PCI bridge
BDF= GRP1= GRP2=
i=0
while [ $i -lt 100 ]; do
    for d in /sys/class/nvme/nvme*; do
        [ -e "$d/serial" ] || continue
        case $(cat "$d/serial") in
        nvtest01*) BDF=$(basename "$(readlink "$d/device")") ;;
        nvgroup1*) GRP1=$(basename "$(readlink "$d/device")") ;;
        nvgroup2*) GRP2=$(basename "$(readlink "$d/device")") ;;
        esac
    done
    [ -n "$BDF" ] && [ -n "$GRP1" ] && [ -n "$GRP2" ] && [ -c /dev/fuse ] && break
    sleep 0.1; i=$((i + 1))
done
NS1_DEV=/dev/$(ls "/sys/bus/pci/devices/$BDF/nvme/"*/ | grep -m1 '^nvme[0-9]*n1$')
if [ -n "$BDF" ] && [ -b "$NS1_DEV" ]; then
    ok devices "$BDF $NS1_DEV group: $GRP1 $GRP2"
else
    bad devices "no NVMe controller: $(ls /dev | tr '\n' ' ')"
fi
U=nvme://$BDF

# the second boot, without an IOMMU: vfio-pci cannot take the controller
if grep -q nvtest=noiommu /proc/cmdline; then
    echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
    echo vfio-pci > "/sys/bus/pci/devices/$BDF/driver_override"
    echo "$BDF" > /sys/bus/pci/drivers_probe 2>/dev/null
    expect_refused no-iommu "has no IOMMU group: the IOMMU is off" info $U/1
    echo "NVTEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
    poweroff -f
fi

# 1. still the kernel's: the message gives the commands to hand it over
expect_refused unbound "is bound to 'nvme', not to vfio-pci" info $U/1
grep -q "/sys/bus/pci/drivers/vfio-pci/new_id" /tmp/out &&
    grep -q "echo $BDF > /sys/bus/pci/devices/$BDF/driver/unbind" /tmp/out &&
    ok unbound-commands || bad unbound-commands "$(tr '\n' '|' < /tmp/out)"

# the host block device, for comparison (and the bench)
[ "$(sha256sum "$NS1_DEV" | cut -d' ' -f1)" = "$NS1_SHA" ] &&
    ok kernel-driver || bad kernel-driver "$NS1_DEV differs from the host's file"

# a group with a device still bound to nvme is not viable: it is named
echo "$GRP1" > "/sys/bus/pci/devices/$GRP1/driver/unbind"
echo vfio-pci > "/sys/bus/pci/devices/$GRP1/driver_override"
echo "$GRP1" > /sys/bus/pci/drivers_probe
expect_refused not-viable "$GRP2 (bound to nvme)" info nvme://$GRP1/1

echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
echo vfio-pci > "/sys/bus/pci/devices/$BDF/driver_override"
echo "$BDF" > /sys/bus/pci/drivers_probe
drv=$(basename "$(readlink "/sys/bus/pci/devices/$BDF/driver")")
[ "$drv" = vfio-pci ] && ok vfio-bound "$(ls /dev/vfio | tr '\n' ' ')" ||
    bad vfio-bound "driver is '$drv'"

# 2. identify
if imgfuse info $U/1 > /tmp/info 2>&1; then
    if ! grep -q "^controller: QEMU NVMe Ctrl (serial nvtest01" /tmp/info; then
        bad info "no model/serial: $(tr '\n' '|' < /tmp/info)"
    elif ! grep -q "^virtual size: .*($NS1_SIZE bytes)" /tmp/info; then
        bad info "size is not $NS1_SIZE: $(tr '\n' '|' < /tmp/info)"
    elif ! grep -q "^lba format: .*512-byte blocks" /tmp/info ||
         ! grep -q "^io queues: 8 (polled, then MSI-X interrupts)" /tmp/info; then
        bad info "lba format: $(tr '\n' '|' < /tmp/info)"
    else
        ok info "$(tr '\n' '|' < /tmp/info)"
    fi
else
    bad info "exit $?: $(tr '\n' '|' < /tmp/info)"
fi
if imgfuse info "driver=nvme,device=$BDF,namespace=2,queues=2,timeout=5" > /tmp/info 2>&1 &&
    grep -q "^namespace size: .* blocks of 4096 bytes" /tmp/info &&
    grep -q "^io queues: 2 " /tmp/info; then
    ok info-dotted "$(grep -e '^namespace' /tmp/info | tr '\n' '|')"
else
    bad info-dotted "$(tr '\n' '|' < /tmp/info)"
fi
expect_refused wrong-namespace "namespace 3 does not exist" info $U/3

# 3. the raw namespace: content, writes, zeroes
M=/tmp/ns1.raw
if imgfuse -F raw --pidfile /tmp/ns1.pid $U/1 $M > /tmp/out 2>&1 && mounted $M; then
    size=$(stat -c %s $M)
    sum=$(sha256sum $M | cut -d' ' -f1)
    [ "$size" = "$NS1_SIZE" ] && [ "$sum" = "$NS1_SHA" ] && ok read "sha256 $sum" ||
        bad read "size $size sha256 $sum, expected $NS1_SIZE $NS1_SHA"
    # readers at once: FUSE workers on their own I/O queue pairs
    for k in 1 2 3; do
        dd if=$M bs=65536 skip=$((k * 64)) count=64 2>/dev/null | sha256sum > /tmp/par$k &
    done
    wait
    k=1; while [ $k -le 3 ] && [ "$(cut -d' ' -f1 /tmp/par$k)" = "$(eval echo \$NS1_PART$k)" ]; do
        k=$((k + 1))
    done
    [ $k = 4 ] && ok parallel-read || bad parallel-read "part $k differs"
    dd if=/etc/pattern.bin of=$M bs=65536 seek=16 conv=notrunc 2>/dev/null &&
        dd if=/etc/small.bin of=$M bs=1 seek=3000001 conv=notrunc 2>/dev/null &&
        [ "$(range_sha $M 16 16)" = "$PAT_SHA" ] &&
        [ "$(dd if=$M bs=1 skip=3000001 count=100 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$SMALL_SHA" ] &&
        ok write || bad write "written data does not read back"
    punch zero 4194304 65536 $M && [ "$(range_sha $M 64 1)" = "$(zero_sha 1)" ] &&
        ok write-zeroes || bad write-zeroes "4 MiB + 64 KiB not zero"
    punch punch 6291456 1048576 $M && [ "$(range_sha $M 96 16)" = "$(zero_sha 16)" ] &&
        ok punch || bad punch "6 MiB + 1 MiB not zero"
    unmount $M /tmp/ns1.pid && ok unmount-raw
else
    bad read "mount failed: $(tr '\n' '|' < /tmp/out)"
fi

# 4. a qcow2 image in namespace 2
M=/tmp/ns2.raw
if imgfuse -F qcow2 --pidfile /tmp/ns2.pid $U/2 $M > /tmp/out 2>&1 && mounted $M; then
    size=$(stat -c %s $M)
    sum=$(sha256sum $M | cut -d' ' -f1)
    [ "$size" = "$QCOW_SIZE" ] && [ "$sum" = "$QCOW_SHA" ] && ok qcow2-read "sha256 $sum" ||
        bad qcow2-read "size $size sha256 $sum, expected $QCOW_SIZE $QCOW_SHA"
    dd if=/etc/pattern.bin of=$M bs=65536 seek=32 conv=notrunc 2>/dev/null &&
        [ "$(range_sha $M 32 16)" = "$PAT_SHA" ] && ok qcow2-write ||
        bad qcow2-write "written data does not read back"
    unmount $M /tmp/ns2.pid && ok unmount-qcow2
else
    bad qcow2-read "mount failed: $(tr '\n' '|' < /tmp/out)"
fi

# 5. busy: a second user of the same group
if imgfuse -r -F raw --pidfile /tmp/b.pid $U/1 /tmp/b.raw > /tmp/out 2>&1; then
    expect_refused busy "device busy" info $U/1
    unmount /tmp/b.raw /tmp/b.pid
else
    bad busy "first mount failed: $(tr '\n' '|' < /tmp/out)"
fi

echo "NVTEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
