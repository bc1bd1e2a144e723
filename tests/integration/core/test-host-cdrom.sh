#!/bin/bash
# imgfuse-test: serial (a TCG guest with a boot timeout)
# host_cdrom against a real (emulated) IDE CD-ROM drive: boots a small
# Debian-kernel guest under qemu-system-x86_64 (TCG) with a disc in
# /dev/sr0 and an empty /dev/sr1, runs this imgfuse binary inside it
# (cdrom/guest-init.sh) and checks its console lines: size, sha256 and
# read-only mounts of the disc, and the clear errors for a read-write open,
# for an empty drive and for the disc's drive once the guest ejected it.
. "$(dirname "$0")/../lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
for c in qemu-system-x86_64 busybox cpio genisoimage apt-get dpkg-deb gcc; do
    command -v "$c" >/dev/null || fail "$c is missing; run scripts/install-deps.sh"
done
[[ " $(busybox --list | tr '\n' ' ') " == *" insmod "* ]] || fail "busybox has no insmod; install busybox-static"

# Guest kernel: Debian's, downloaded (not installed) once and kept for
# later runs. Modules in load order: the dependencies come first, as there
# is no modprobe in the guest.
MODS=(drivers/scsi/scsi_common.ko drivers/scsi/scsi_mod.ko drivers/ata/libata.ko
      drivers/ata/ata_piix.ko drivers/cdrom/cdrom.ko drivers/scsi/sr_mod.ko
      fs/fuse/fuse.ko)
KCACHE=${TMPDIR:-/tmp}/imgfuse-guest-kernel
mkdir -p "$KCACHE"
exec 9>"$KCACHE/lock"
flock 9
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '!k && /Depends: linux-image-[0-9]/{print $2; k=1}'
}
KPKG=$(kernel_pkg)
if [ -z "$KPKG" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    KPKG=$(kernel_pkg)
fi
[ -n "$KPKG" ] || fail "apt cannot name the current linux-image-amd64 kernel"
K=$KCACHE/$KPKG
if [ ! -e "$K/ready" ]; then
    note "fetching $KPKG"
    (cd "$KCACHE" && ls "$KPKG"_*.deb >/dev/null 2>&1 ||
        apt-get download -q "$KPKG" >/dev/null 2>&1) ||
        fail "apt-get download $KPKG failed"
    rm -rf "$K" "$K.tmp"
    mkdir -p "$K.tmp/x" "$K.tmp/mods"
    globs=("./boot/vmlinuz-*")
    for m in "${MODS[@]}"; do globs+=("./lib/modules/*/kernel/$m"); done
    dpkg-deb --fsys-tarfile "$KCACHE/$KPKG"_*.deb |
        tar -x -C "$K.tmp/x" --wildcards "${globs[@]}" || fail "cannot unpack $KPKG"
    cp "$K.tmp"/x/boot/vmlinuz-* "$K.tmp/vmlinuz"
    for m in "${MODS[@]}"; do
        cp "$K.tmp"/x/lib/modules/*/kernel/"$m" "$K.tmp/mods/" || fail "$KPKG lacks $m"
    done
    rm -rf "$K.tmp/x"
    touch "$K.tmp/ready"
    mv "$K.tmp" "$K"
fi
exec 9>&-

# The disc: an ISO 9660 image made here; the guest compares with these.
mkdir -p "$T/iso/data"
head -c 3M /dev/urandom > "$T/iso/data/random.bin"
echo "imgfuse host_cdrom test" > "$T/iso/README.TXT"
genisoimage -quiet -R -J -V IMGFUSE_CD -o "$T/cd.iso" "$T/iso" ||
    fail "genisoimage failed"
ISO_SIZE=$(stat -c %s "$T/cd.iso")
ISO_SHA=$(sha "$T/cd.iso")
[ $((ISO_SIZE % 2048)) -eq 0 ] || fail "ISO size $ISO_SIZE is not a multiple of 2048"

# initramfs: busybox, the modules, imgfuse with its libraries at the same
# paths, and the init script.
R=$T/initrd
mkdir -p "$R"/{bin,mods,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$R/bin/busybox"
for a in $(busybox --list); do
    [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
done
i=10
for m in "${MODS[@]}"; do
    cp "$K/mods/$(basename "$m")" "$R/mods/$i-$(basename "$m")"
    i=$((i + 1))
done
cp "$IMGFUSE" "$R/bin/imgfuse"
ldd "$IMGFUSE" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
done
gcc -static -O2 -o "$R/bin/eject" "$HERE/cdrom/eject.c" || fail "cannot build cdrom/eject.c"
ln -s /proc/mounts "$R/etc/mtab"
cp "$HERE/cdrom/guest-init.sh" "$R/init"
chmod 755 "$R/init"
printf 'ISO_SIZE=%s\nISO_SHA=%s\n' "$ISO_SIZE" "$ISO_SHA" > "$R/etc/cdtest.env"
# uncompressed: TCG would spend longer inflating it than the host saves
(cd "$R" && find . | cpio -o -H newc --quiet) > "$T/initrd.cpio"

# The guest: IDE disc on the primary channel (sr0), an empty IDE drive on
# the secondary (sr1). -no-reboot plus poweroff -f ends qemu.
: > "$T/console.log"
start=$(date +%s)
rc=0
timeout -k 5 "${CDROM_GUEST_TIMEOUT:-150}" qemu-system-x86_64 \
    -accel tcg -M pc -cpu max -m 512 -smp 1 \
    -nodefaults -display none -no-reboot -monitor none \
    -serial "file:$T/console.log" \
    -kernel "$K/vmlinuz" -initrd "$T/initrd.cpio" \
    -append "console=ttyS0 loglevel=2 panic=-1" \
    -drive "file=$T/cd.iso,if=none,id=cd0,media=cdrom,format=raw,readonly=on" \
    -device ide-cd,drive=cd0,bus=ide.0,unit=0 \
    -drive if=none,id=cd1,media=cdrom \
    -device ide-cd,drive=cd1,bus=ide.1,unit=0 \
    </dev/null >"$T/qemu.out" 2>&1 || rc=$?
note "guest ran $(($(date +%s) - start)) s (qemu exit $rc)"
grep -a '^CDTEST' "$T/console.log" | sed 's/^/  guest: /' || true

dump() {
    echo "--- qemu:"; cat "$T/qemu.out"
    echo "--- console:"; tr -d '\r' < "$T/console.log" | tail -60
}
[ $rc -eq 0 ] || { dump; fail "qemu exited $rc (124: timed out)"; }
grep -aq '^CDTEST-DONE' "$T/console.log" || { dump; fail "the guest did not finish"; }
if grep -aq '^CDTEST .* FAIL' "$T/console.log"; then
    fail "guest checks failed: $(grep -a '^CDTEST .* FAIL' "$T/console.log" | tr -d '\r')"
fi
for c in devices info mount mount-write mount-unmount format-raw format-raw-write \
         format-raw-unmount cache-none cache-none-write cache-none-unmount \
         read-write no-medium no-medium-info eject ejected ejected-info; do
    grep -aq "^CDTEST $c OK" "$T/console.log" || { dump; fail "guest check '$c' did not pass"; }
done
echo ok
