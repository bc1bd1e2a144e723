#!/bin/sh
# /init of the guest test-iscsi-pr-guest.sh boots: the kernel's iSCSI
# initiator (iscsistart) logs into the host's tgtd, so the guest has a real
# SCSI disk with persistent reservations. imgfuse --pr=exclusive runs on it
# through qemu-pr-helper and by SG_IO, and sg_persist (sg3-utils) reads the
# keys and the reservation independently. One line per check,
# "PRTEST <check> OK|FAIL ...", on the serial console; the host decides.
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mkdir -p /run
echo "PRTEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)"

ok() { echo "PRTEST $1 OK${2:+: $2}"; }
bad() { echo "PRTEST $1 FAIL: $2"; }
mounted() { grep -q " $1 fuse" /proc/mounts; }
alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
        [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}
unmount() {
    pid=$(cat /tmp/pid 2>/dev/null)
    umount "$1" || return 1
    i=0
    while [ $i -lt 100 ] && alive "$pid"; do sleep 0.05; i=$((i + 1)); done
    ! alive "$pid"
}
# sg CHECK WANT ARGS...: sg_persist ARGS on the disk prints WANT
sg() {
    check=$1 want=$2; shift 2
    sg_persist "$@" "$D" > /tmp/sg 2>&1
    if grep -qiF -- "$want" /tmp/sg; then ok "$check"
    else bad "$check" "sg_persist $* lacks '$want': $(tr '\n' ' ' < /tmp/sg)"; fi
}

for m in /mods/*.ko; do insmod "$m" 2>/dev/null || echo "insmod $m failed"; done
PORT= IQN=
for w in $(cat /proc/cmdline); do
    case $w in prt.port=*) PORT=${w#*=};; prt.iqn=*) IQN=${w#*=};; esac
done
ip link set lo up; ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
iscsistart -i iqn.2024-01.test.imgfuse:guest -t "$IQN" -g 1 -a 10.0.2.2 -p "$PORT" \
    > /tmp/login 2>&1 || { bad login "$(cat /tmp/login)"; poweroff -f; }
D=
for i in $(seq 50); do
    for b in /sys/block/sd*; do
        case $(cat "$b/device/vendor" 2>/dev/null) in IET*) D=/dev/${b##*/};; esac
    done
    [ -n "$D" ] && [ -b "$D" ] && break
    sleep 0.2
done
[ -n "$D" ] && ok disk "$D" || { bad disk "no IET disk appeared"; poweroff -f; }

qemu-pr-helper -k /run/pr.sock -f /run/pr.pid > /tmp/prh.log 2>&1 &
for i in $(seq 50); do [ -S /run/pr.sock ] && break; sleep 0.1; done
[ -S /run/pr.sock ] || bad helper "qemu-pr-helper did not start: $(cat /tmp/prh.log)"

echo "--- without CAP_SYS_RAWIO: through qemu-pr-helper"
if norawio imgfuse --pr=exclusive "$D" /tmp/m > /tmp/out 2>&1; then
    bad norawio-refused "mounted without CAP_SYS_RAWIO and without a helper"
    umount /tmp/m
elif grep -q "need CAP_SYS_RAWIO (SG_IO); run qemu-pr-helper" /tmp/out; then
    ok norawio-refused "$(head -1 /tmp/out)"
else
    bad norawio-refused "$(cat /tmp/out)"
fi
if norawio imgfuse --pidfile /tmp/pid --pr=exclusive --pr-key=6a \
        --pr-helper=/run/pr.sock "$D" /tmp/m > /tmp/out 2>&1; then
    ok helper-mount
else
    bad helper-mount "$(cat /tmp/out)"
fi
grep -q "^CapEff:.*" "/proc/$(cat /tmp/pid)/status" &&
    [ $(( 0x$(awk '/^CapEff/{print $2}' "/proc/$(cat /tmp/pid)/status") >> 17 & 1 )) = 0 ] &&
    ok helper-norawio || bad helper-norawio "the mount has CAP_SYS_RAWIO"
sg helper-keys 0x6a --in --read-keys
sg helper-res "Key=0x6a" --in --read-reservation
sg helper-res-type "Write Exclusive, registrants only" --in --read-reservation
norawio imgfuse info --pr-helper=/run/pr.sock "$D" > /tmp/info 2>&1
grep -q "^pr reservation: key 0x000000000000006a, Write Exclusive - Registrants Only" /tmp/info &&
    ok helper-info || bad helper-info "$(tr '\n' ' ' < /tmp/info)"
dd if=/dev/urandom of=/tmp/pat bs=4096 count=4 2>/dev/null
dd if=/tmp/pat of=/tmp/m bs=4096 conv=notrunc,fsync 2>/dev/null &&
    cmp /tmp/pat /tmp/m -n 16384 2>/dev/null && ok helper-write || bad helper-write "write through the mount"
# --locking=off: this host's byte locks would refuse first; the reservation
# is what refuses another host
if imgfuse --locking=off --pr=exclusive --pr-key=5b "$D" /tmp/m2 > /tmp/out 2>&1; then
    bad second-refused "a second writer was mounted"; umount /tmp/m2
elif grep -q "reserved by key 0x000000000000006a (Write Exclusive - Registrants Only)" /tmp/out; then
    ok second-refused "$(head -1 /tmp/out)"
else
    bad second-refused "$(cat /tmp/out)"
fi
imgfuse -r --locking=off --pr=exclusive "$D" /tmp/r > /tmp/out 2>&1 && cmp /tmp/pat /tmp/r -n 16384 &&
    ok reader || bad reader "$(cat /tmp/out)"
mounted /tmp/r && umount /tmp/r
unmount /tmp/m && ok helper-unmount || bad helper-unmount "imgfuse still runs"
sg helper-released "there is NO reservation held" --in --read-reservation
sg helper-unregistered "there are NO registered reservation keys" --in --read-keys

echo "--- SG_IO (CAP_SYS_RAWIO), kill -9, preempt through the helper"
imgfuse --pidfile /tmp/pid --pr=exclusive --pr-key=5b "$D" /tmp/m > /tmp/out 2>&1 &&
    ok sgio-mount || bad sgio-mount "$(cat /tmp/out)"
sg sgio-res "Key=0x5b" --in --read-reservation
kill -9 "$(cat /tmp/pid)"; sleep 0.2; umount -l /tmp/m 2>/dev/null
sg killed-keeps "Key=0x5b" --in --read-reservation
if imgfuse --pidfile /tmp/pid --pr=exclusive,preempt --pr-key=6a --pr-helper=/run/pr.sock \
        "$D" /tmp/m > /tmp/out 2>&1 && grep -q "took the reservation of key 0x000000000000005b" /tmp/out; then
    ok preempt "$(grep took /tmp/out)"
else
    bad preempt "$(cat /tmp/out)"
fi
sg preempt-res "Key=0x6a" --in --read-reservation
unmount /tmp/m || bad preempt-unmount "imgfuse still runs"
sg preempt-released "there is NO reservation held" --in --read-reservation
echo "PRTEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
