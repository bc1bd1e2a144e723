#!/bin/sh
# /init of the tiny guest that test-host-cdrom.sh boots: loads the IDE
# CD-ROM and FUSE modules, runs imgfuse against /dev/sr0 (a disc whose
# sha256 and size the host wrote into /etc/cdtest.env; ejected at the
# end) and /dev/sr1 (an empty drive), and prints one line per check,
# "CDTEST <check> OK|FAIL ...", on the serial console. The host decides
# pass or fail from those lines.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
. /etc/cdtest.env
echo "CDTEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)"

ok() { echo "CDTEST $1 OK${2:+: $2}"; }
bad() { echo "CDTEST $1 FAIL: $2"; }
mounted() { grep -q " $1 fuse" /proc/mounts; }

# alive PID: running, and not a zombie that this shell (pid 1, so the
# daemon's reaper) has not waited for yet
alive() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
        [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# unmount MOUNTPOINT CHECK PIDFILE: the daemon exits once unmounted.
unmount() {
    pid=$(cat "$3" 2>/dev/null)
    umount "$1" || { bad "$2" "umount $1 failed"; return 1; }
    i=0
    while [ $i -lt 100 ] && alive "$pid"; do
        sleep 0.05; i=$((i + 1))
    done
    ! alive "$pid" || { bad "$2" "imgfuse (pid $pid) still runs after umount"; return 1; }
    ! mounted "$1" || { bad "$2" "$1 still mounted after umount"; return 1; }
    return 0
}

# expect_refused CHECK PATTERN imgfuse-args...: non-zero exit, PATTERN in
# the message, nothing mounted on the last argument.
expect_refused() {
    check=$1 pat=$2; shift 2
    eval "mnt=\${$#}"
    if imgfuse "$@" > /tmp/out 2>&1; then
        bad "$check" "imgfuse $* succeeded"
        mounted "$mnt" && umount "$mnt"
        return
    fi
    msg=$(head -1 /tmp/out)
    if ! grep -qF -- "$pat" /tmp/out; then
        bad "$check" "message lacks '$pat': $msg"
    elif mounted "$mnt"; then
        bad "$check" "$mnt is mounted"
    else
        ok "$check" "$msg"
    fi
}

for m in /mods/*.ko; do
    insmod "$m" || bad insmod "$m"
done
i=0
while [ $i -lt 100 ] && { [ ! -b /dev/sr0 ] || [ ! -b /dev/sr1 ] || [ ! -c /dev/fuse ]; }; do
    sleep 0.1; i=$((i + 1))
done
if [ -b /dev/sr0 ] && [ -b /dev/sr1 ] && [ -c /dev/fuse ]; then
    ok devices "$(ls /dev/sr* /dev/fuse | tr '\n' ' ')"
else
    bad devices "sr0/sr1/fuse missing: $(ls /dev | tr '\n' ' ')"
fi

# 1. a disc in the drive
if imgfuse info /dev/sr0 > /tmp/info 2>&1; then
    if ! grep -q "^protocol: host_cdrom" /tmp/info; then
        bad info "not host_cdrom: $(tr '\n' '|' < /tmp/info)"
    elif ! grep -q "^virtual size: .*($ISO_SIZE bytes)" /tmp/info; then
        bad info "size is not $ISO_SIZE: $(tr '\n' '|' < /tmp/info)"
    else
        ok info "$(grep -e '^protocol' -e '^virtual size' /tmp/info | tr '\n' ' ')"
    fi
else
    bad info "exit $?: $(tr '\n' '|' < /tmp/info)"
fi

# check_mount CHECK imgfuse-options...: mount read-only, compare size and
# sha256 with the host's, try a write, unmount.
check_mount() {
    check=$1; shift
    mnt=/tmp/$check.raw
    if ! imgfuse --pidfile /tmp/$check.pid "$@" /dev/sr0 "$mnt" > /tmp/out 2>&1; then
        bad "$check" "imgfuse $* /dev/sr0 failed: $(tr '\n' '|' < /tmp/out)"
        return
    fi
    if ! mounted "$mnt"; then
        bad "$check" "exit 0 but $mnt is not mounted"
        return
    fi
    size=$(stat -c %s "$mnt")
    sum=$(sha256sum "$mnt" | cut -d' ' -f1)
    if [ "$size" != "$ISO_SIZE" ]; then
        bad "$check" "size $size, expected $ISO_SIZE"
    elif [ "$sum" != "$ISO_SHA" ]; then
        bad "$check" "sha256 $sum, expected $ISO_SHA"
    else
        ok "$check" "size $size sha256 $sum"
    fi
    if dd if=/dev/zero of="$mnt" bs=2048 count=1 conv=notrunc 2> /tmp/err; then
        bad "$check-write" "a write to $mnt succeeded"
    elif grep -q -e "Read-only file system" -e "Operation not permitted" /tmp/err; then
        ok "$check-write" "$(head -1 /tmp/err)"
    else
        bad "$check-write" "write failed, but not with EROFS/EPERM: $(head -1 /tmp/err)"
    fi
    unmount "$mnt" "$check" /tmp/$check.pid && ok "$check-unmount"
}

check_mount mount -r
check_mount format-raw -r -F raw
check_mount cache-none -r --cache=none

# 3. a read-write open of a CD-ROM
expect_refused read-write "/dev/sr0: CD-ROM drives are read-only; mount with -r" \
    /dev/sr0 /tmp/rw.raw

# 2. an empty drive
expect_refused no-medium "/dev/sr1: no medium in the drive" -r /dev/sr1 /tmp/empty.raw
expect_refused no-medium-info "/dev/sr1: no medium in the drive" info /dev/sr1

# ... and the first drive once its tray is open
if eject /dev/sr0 > /tmp/out 2>&1; then
    ok eject
else
    bad eject "$(head -1 /tmp/out)"
fi
expect_refused ejected "/dev/sr0: no medium in the drive" -r /dev/sr0 /tmp/ejected.raw
expect_refused ejected-info "/dev/sr0: no medium in the drive" info /dev/sr0

echo "CDTEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
