# Shared by test-nvme-guest.sh and bench/nvme-syscalls.sh: the guest that
# runs imgfuse on an emulated NVMe controller behind an emulated
# intel-iommu. Source it with fail() and note() defined.
#   nvme_guest_kernel            -> $K: vmlinuz and mods/ (cached)
#   nvme_guest_initrd DIR INIT [BINARY...]
#                                -> DIR.cpio: busybox, the modules, imgfuse
#                                   and each BINARY with their libraries,
#                                   INIT as /init; DIR/etc is for the caller
#   nvme_guest_run CONSOLE TIMEOUT INITRD QEMU-ARGS...
#                                -> qemu's exit status; console in CONSOLE

# Modules in load order (no modprobe in the guest): the nvme driver's crc
# dependencies, nvme, VFIO, FUSE.
NVME_GUEST_MODS=(crypto/crct10dif_common.ko crypto/crct10dif_generic.ko
      lib/crc-t10dif.ko lib/crc64.ko crypto/crc64_rocksoft_generic.ko
      lib/crc64-rocksoft.ko block/t10-pi.ko drivers/nvme/host/nvme-core.ko
      drivers/nvme/host/nvme.ko virt/lib/irqbypass.ko drivers/vfio/vfio.ko
      drivers/vfio/vfio_iommu_type1.ko drivers/vfio/vfio_virqfd.ko
      drivers/vfio/pci/vfio-pci-core.ko drivers/vfio/pci/vfio-pci.ko
      fs/fuse/fuse.ko)

# Debian's kernel, downloaded (not installed) once and kept for later runs.
nvme_guest_kernel() {
    local kcache=${TMPDIR:-/tmp}/imgfuse-guest-kernel kpkg m globs
    for c in qemu-system-x86_64 busybox cpio apt-get dpkg-deb; do
        command -v "$c" >/dev/null || fail "$c is missing; run scripts/install-deps.sh"
    done
    [[ " $(busybox --list | tr '\n' ' ') " == *" insmod "* ]] ||
        fail "busybox has no insmod; install busybox-static"
    mkdir -p "$kcache"
    exec 9>"$kcache/lock"
    flock 9
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           awk '!k && /Depends: linux-image-[0-9]/{print $2; k=1}')
    if [ -z "$kpkg" ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
               awk '!k && /Depends: linux-image-[0-9]/{print $2; k=1}')
    fi
    [ -n "$kpkg" ] || fail "apt cannot name the current linux-image-amd64 kernel"
    K=$kcache/$kpkg-nvme
    if [ ! -e "$K/ready" ]; then
        note "fetching $kpkg"
        (cd "$kcache" && ls "$kpkg"_*.deb >/dev/null 2>&1 ||
            apt-get download -q "$kpkg" >/dev/null 2>&1) ||
            fail "apt-get download $kpkg failed"
        rm -rf "$K" "$K.tmp"
        mkdir -p "$K.tmp/x" "$K.tmp/mods"
        globs=("./boot/vmlinuz-*")
        for m in "${NVME_GUEST_MODS[@]}"; do globs+=("./lib/modules/*/kernel/$m"); done
        dpkg-deb --fsys-tarfile "$kcache/$kpkg"_*.deb |
            tar -x -C "$K.tmp/x" --wildcards "${globs[@]}" || fail "cannot unpack $kpkg"
        cp "$K.tmp"/x/boot/vmlinuz-* "$K.tmp/vmlinuz"
        for m in "${NVME_GUEST_MODS[@]}"; do
            cp "$K.tmp"/x/lib/modules/*/kernel/"$m" "$K.tmp/mods/" || fail "$kpkg lacks $m"
        done
        rm -rf "$K.tmp/x"
        touch "$K.tmp/ready"
        mv "$K.tmp" "$K"
    fi
    exec 9>&-
}

# copy_with_libs BINARY DIR NAME: BINARY as DIR/bin/NAME, its shared
# libraries at the same paths under DIR.
_copy_with_libs() {
    cp "$1" "$2/bin/$3"
    # a static binary has no libraries (ldd and grep then fail)
    { ldd "$1" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } |
        while read -r lib; do
            mkdir -p "$2$(dirname "$lib")"
            cp -L "$lib" "$2$lib"
        done
}

nvme_guest_initrd() {
    local r=$1 init=$2 i=10 m a b
    shift 2
    mkdir -p "$r"/{bin,mods,proc,sys,dev,tmp,etc}
    cp "$(command -v busybox)" "$r/bin/busybox"
    for a in $(busybox --list); do
        [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"
    done
    for m in "${NVME_GUEST_MODS[@]}"; do
        cp "$K/mods/$(basename "$m")" "$r/mods/$i-$(basename "$m")"
        i=$((i + 1))
    done
    _copy_with_libs "$IMGFUSE" "$r" imgfuse
    for b in "$@"; do
        rm -f "$r/bin/$(basename "$b")"
        _copy_with_libs "$b" "$r" "$(basename "$b")"
    done
    ln -sf /proc/mounts "$r/etc/mtab"
    cp "$init" "$r/init"
    chmod 755 "$r/init"
}

nvme_guest_pack() {
    # uncompressed: TCG would spend longer inflating it than the host saves
    (cd "$1" && find . | cpio -o -H newc --quiet) > "$1.cpio"
}

# q35 with an emulated IOMMU (interrupt remapping, so that vfio_iommu_type1
# takes the group); -no-reboot plus poweroff -f in the guest ends qemu.
# NVME_GUEST_IOMMU=0: no IOMMU at all; NVME_GUEST_APPEND: more kernel
# arguments (the init script may read them in /proc/cmdline).
nvme_guest_run() {
    local console=$1 secs=$2 initrd=$3 rc=0 iommu=(-device intel-iommu,intremap=on)
    local append="console=ttyS0 intel_iommu=on loglevel=2 panic=-1 ${NVME_GUEST_APPEND:-}"
    shift 3
    [ "${NVME_GUEST_IOMMU:-1}" = 1 ] || iommu=()
    : > "$console"
    timeout -k 5 "$secs" qemu-system-x86_64 \
        -accel tcg -M q35,kernel-irqchip=split -cpu max -m 512 -smp 1 \
        "${iommu[@]}" \
        -nodefaults -display none -no-reboot -monitor none \
        -serial "file:$console" \
        -kernel "$K/vmlinuz" -initrd "$initrd" \
        -append "$append" \
        "$@" </dev/null || rc=$?
    return $rc
}
