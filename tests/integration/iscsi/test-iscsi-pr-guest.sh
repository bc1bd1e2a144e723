#!/bin/bash
# imgfuse-test: serial (a guest, a fixed port or socket, or daemon timing)
# --pr=exclusive on a host SCSI device (host_device): a small TCG guest
# (Debian kernel, busybox initramfs) logs its kernel iSCSI initiator into a
# tgtd on this host, so it has a real /dev/sdX with persistent
# reservations; the host has no SCSI devices. Inside it imgfuse reserves
# the disk through Debian's real qemu-pr-helper (without CAP_SYS_RAWIO,
# which is refused without the helper) and by SG_IO, and
# sg_persist (sg3-utils) reads keys and reservation independently
# (pr-guest/init.sh): reserved while mounted, a second writer refused with
# the holder's key, a reader let in, released at unmount, kept after
# kill -9 and taken over by --pr=exclusive,preempt.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/iscsi-lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
for c in qemu-system-x86_64 qemu-pr-helper sg_persist busybox cpio apt-get dpkg-deb gcc; do
    command -v "$c" >/dev/null || fail "$c is missing; run scripts/install-deps.sh"
done

# Guest kernel and open-iscsi's iscsistart: Debian's, downloaded (not
# installed) once and kept. Modules in load order (no modprobe in the
# guest); the crc providers are soft dependencies modules.dep omits.
MODS=(crct10dif_common crct10dif_generic crc64 crc64_rocksoft_generic
      virtio_pci_legacy_dev virtio_pci_modern_dev virtio_ring virtio virtio_pci
      failover net_failover virtio_net crc32c_generic scsi_common scsi_mod
      scsi_transport_iscsi libiscsi libiscsi_tcp iscsi_tcp crc64-rocksoft
      crc-t10dif t10-pi sd_mod sg fuse)
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
K=$KCACHE/$KPKG-iscsi
if [ ! -e "$K/ready" ]; then
    note "fetching $KPKG and open-iscsi"
    (cd "$KCACHE" && { ls "$KPKG"_*.deb >/dev/null 2>&1 ||
        apt-get download -q "$KPKG" >/dev/null 2>&1; } &&
        { ls open-iscsi_*.deb libopeniscsiusr_*.deb >/dev/null 2>&1 ||
        apt-get download -q open-iscsi libopeniscsiusr >/dev/null 2>&1; }) ||
        fail "apt-get download $KPKG open-iscsi libopeniscsiusr failed"
    rm -rf "$K" "$K.tmp"
    mkdir -p "$K.tmp/x" "$K.tmp/mods" "$K.tmp/oi"
    globs=("./boot/vmlinuz-*")
    for m in "${MODS[@]}"; do globs+=("./lib/modules/*/$m.ko"); done
    dpkg-deb --fsys-tarfile "$KCACHE/$KPKG"_*.deb |
        tar -x -C "$K.tmp/x" --wildcards "${globs[@]}" || fail "cannot unpack $KPKG"
    cp "$K.tmp"/x/boot/vmlinuz-* "$K.tmp/vmlinuz"
    i=10
    for m in "${MODS[@]}"; do
        f=$(find "$K.tmp/x/lib/modules" -name "$m.ko" | head -1)
        [ -n "$f" ] || fail "$KPKG lacks $m.ko"
        cp "$f" "$K.tmp/mods/$i-$m.ko"
        i=$((i + 1))
    done
    for d in "$KCACHE"/open-iscsi_*.deb "$KCACHE"/libopeniscsiusr_*.deb; do
        dpkg-deb -x "$d" "$K.tmp/oi" || fail "cannot unpack $d"
    done
    rm -rf "$K.tmp/x"
    touch "$K.tmp/ready"
    mv "$K.tmp" "$K"
fi
exec 9>&-

# The LUN on this host's tgtd; the guest reaches 127.0.0.1 as 10.0.2.2.
truncate -s 16M "$T/lun.img"
tgt_start a
tgt_lun a "$T/lun.img"

# initramfs: busybox, modules, and imgfuse, iscsistart, sg_persist and
# qemu-pr-helper with their libraries at the same paths.
R=$T/initrd
mkdir -p "$R"/{bin,sbin,usr/bin,mods,proc,sys,dev,tmp,etc,run}
cp "$(command -v busybox)" "$R/bin/busybox"
for a in $(busybox --list); do
    [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"
done
cp "$K"/mods/*.ko "$R/mods/"
copy_bin() {
    cp "$1" "$R$2"
    LD_LIBRARY_PATH=$K/oi/usr/lib/x86_64-linux-gnu:$K/oi/lib/x86_64-linux-gnu \
        ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do
        [ -f "$lib" ] || continue
        case $lib in
        "$K"/oi/*) dst=${lib#"$K"/oi} ;;
        *) dst=$lib ;;
        esac
        mkdir -p "$R$(dirname "$dst")"
        cp -L "$lib" "$R$dst"
    done
}
copy_bin "$IMGFUSE" /bin/imgfuse
copy_bin "$K/oi/sbin/iscsistart" /sbin/iscsistart
copy_bin "$(command -v sg_persist)" /usr/bin/sg_persist
copy_bin "$(command -v qemu-pr-helper)" /usr/bin/qemu-pr-helper
gcc -static -O2 -o "$R/bin/norawio" "$HERE/pr-guest/norawio.c" ||
    fail "cannot build pr-guest/norawio.c"
ln -s /proc/mounts "$R/etc/mtab"
cp "$HERE/pr-guest/init.sh" "$R/init"
chmod 755 "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet) > "$T/initrd.cpio"

: > "$T/console.log"
start=$(date +%s)
rc=0
timeout -k 5 "${PR_GUEST_TIMEOUT:-150}" qemu-system-x86_64 \
    -accel tcg -M pc -cpu max -m 512 -smp 1 \
    -nodefaults -display none -no-reboot -monitor none \
    -serial "file:$T/console.log" \
    -kernel "$K/vmlinuz" -initrd "$T/initrd.cpio" \
    -append "console=ttyS0 loglevel=2 panic=-1 prt.port=$TGT_PORT prt.iqn=$IQN" \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
    </dev/null >"$T/qemu.out" 2>&1 || rc=$?
note "guest ran $(($(date +%s) - start)) s (qemu exit $rc)"
grep -a '^PRTEST' "$T/console.log" | tr -d '\r' | sed 's/^/  guest: /' || true

dump() {
    echo "--- qemu:"; cat "$T/qemu.out"
    echo "--- console:"; tr -d '\r' < "$T/console.log" | tail -60
}
[ $rc -eq 0 ] || { dump; fail "qemu exited $rc (124: timed out)"; }
grep -aq '^PRTEST-DONE' "$T/console.log" || { dump; fail "the guest did not finish"; }
if grep -aq '^PRTEST .* FAIL' "$T/console.log"; then
    fail "guest checks failed: $(grep -a '^PRTEST .* FAIL' "$T/console.log" | tr -d '\r')"
fi
for c in disk norawio-refused helper-mount helper-norawio helper-keys helper-res helper-res-type helper-info \
         helper-write second-refused reader helper-unmount helper-released \
         helper-unregistered sgio-mount sgio-res killed-keeps preempt preempt-res \
         preempt-released; do
    grep -aq "^PRTEST $c OK" "$T/console.log" || { dump; fail "guest check '$c' did not pass"; }
done
echo ok
