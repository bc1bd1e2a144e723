#!/bin/bash
# imgfuse-test: serial (a TCG guest)
# nvme:// against an emulated NVMe controller: boots a small Debian-kernel
# guest under qemu-system-x86_64 (TCG) with an emulated intel-iommu and a
# QEMU nvme device whose two namespaces are files here (raw data with
# 512-byte blocks; a qcow2 image with 4096-byte blocks). The guest binds the
# controller to vfio-pci and runs this imgfuse on it (guest-init.sh); its
# console lines say which checks passed. After poweroff the backing files
# must hold exactly what the guest wrote (qemu-img as the oracle).
. "$(dirname "$0")/../lib.sh"

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/guest-lib.sh"
for c in qemu-img qemu-io gcc; do
    command -v "$c" >/dev/null || fail "$c is missing; run scripts/install-deps.sh"
done
nvme_guest_kernel

# Namespace 1: 16 MiB of random data. Namespace 2: a qcow2 image whose
# first 4 MiB qemu-io wrote, padded to 8 MiB (4096-byte blocks).
head -c 16M /dev/urandom > "$T/ns1.img"
cp "$T/ns1.img" "$T/ns1.orig"
qemu-img create -q -f qcow2 "$T/ns2.qcow2" 32M
qemu-io -f qcow2 -c "write -P 0x5a 0 4M" -c "write -P 0xa5 1M 64k" "$T/ns2.qcow2" >/dev/null ||
    fail "qemu-io cannot write the qcow2 image"
truncate -s 8M "$T/ns2.qcow2"
qemu-img convert -f qcow2 -O raw "$T/ns2.qcow2" "$T/ns2.raw"
head -c 1M /dev/urandom > "$T/pattern.bin"
head -c 100 /dev/urandom > "$T/small.bin"

# initramfs: busybox, the modules, imgfuse, the fallocate helper, the
# init script, and what the guest compares with.
R=$T/initrd
gcc -static -O2 -o "$T/punch" "$HERE/punch.c" || fail "cannot build nvme/punch.c"
nvme_guest_initrd "$R" "$HERE/guest-init.sh" "$T/punch"
cp "$T/pattern.bin" "$T/small.bin" "$R/etc/"
{
    echo "NS1_SIZE=$(stat -c %s "$T/ns1.img")"
    echo "NS1_SHA=$(sha "$T/ns1.img")"
    echo "QCOW_SIZE=$(stat -c %s "$T/ns2.raw")"
    echo "QCOW_SHA=$(sha "$T/ns2.raw")"
    for k in 1 2 3; do
        echo "NS1_PART$k=$(dd if="$T/ns1.img" bs=65536 skip=$((k * 64)) count=64 status=none | sha256sum | cut -d' ' -f1)"
    done
    echo "PAT_SHA=$(sha "$T/pattern.bin")"
    echo "SMALL_SHA=$(sha "$T/small.bin")"
} > "$R/etc/nvtest.env"
nvme_guest_pack "$R"

# The controller: namespace 1 with 512-byte blocks, 2 with 4096.
start=$(date +%s)
rc=0
nvme_guest_run "$T/console.log" "${NVME_GUEST_TIMEOUT:-170}" "$R.cpio" \
    -drive "file=$T/ns1.img,if=none,id=n1,format=raw,discard=unmap" \
    -drive "file=$T/ns2.qcow2,if=none,id=n2,format=raw,discard=unmap" \
    -device nvme,id=nvme0,serial=nvtest01 \
    -device nvme-ns,drive=n1,bus=nvme0,nsid=1 \
    -device nvme-ns,drive=n2,bus=nvme0,nsid=2,logical_block_size=4096,physical_block_size=4096 \
    -device pcie-pci-bridge,id=br0 \
    -device nvme,serial=nvgroup1,bus=br0,addr=1,drive=g1 \
    -drive if=none,id=g1,driver=null-co,size=1M \
    -device nvme,serial=nvgroup2,bus=br0,addr=2,drive=g2 \
    -drive if=none,id=g2,driver=null-co,size=1M \
    >"$T/qemu.out" 2>&1 || rc=$?
note "guest ran $(($(date +%s) - start)) s (qemu exit $rc)"
grep -a '^NVTEST' "$T/console.log" | cut -c1-200 | sed 's/^/  guest: /' || true

dump() {
    echo "--- qemu:"; cat "$T/qemu.out"
    echo "--- console:"; tr -d '\r' < "$T/console.log" | tail -60
}
[ $rc -eq 0 ] || { dump; fail "qemu exited $rc (124: timed out)"; }
grep -aq '^NVTEST-DONE' "$T/console.log" || { dump; fail "the guest did not finish"; }
if grep -aq '^NVTEST .* FAIL' "$T/console.log"; then
    fail "guest checks failed: $(grep -a '^NVTEST .* FAIL' "$T/console.log" | tr -d '\r')"
fi
for c in devices unbound unbound-commands kernel-driver not-viable vfio-bound info info-dotted \
         wrong-namespace read parallel-read write write-zeroes punch unmount-raw qcow2-read \
         qcow2-write unmount-qcow2 busy; do
    grep -aq "^NVTEST $c OK" "$T/console.log" || { dump; fail "guest check '$c' did not pass"; }
done

# The host's view after poweroff: namespace 1 holds the guest's writes and
# zeroes and nothing else changed.
E=$T/ns1.orig
dd if="$T/pattern.bin" of="$E" bs=65536 seek=16 conv=notrunc status=none
dd if="$T/small.bin" of="$E" bs=1 seek=3000001 conv=notrunc status=none
dd if=/dev/zero of="$E" bs=65536 seek=64 count=1 conv=notrunc status=none
dd if=/dev/zero of="$E" bs=65536 seek=96 count=16 conv=notrunc status=none
cmp "$E" "$T/ns1.img" || fail "namespace 1's file is not what the guest wrote"
# Namespace 2: a consistent qcow2 holding the pattern over qemu-io's data.
qemu-img check -q -f qcow2 "$T/ns2.qcow2" || fail "qemu-img check: the qcow2 image is damaged"
dd if="$T/pattern.bin" of="$T/ns2.raw" bs=65536 seek=32 conv=notrunc status=none
qemu-img compare -q -f qcow2 -F raw "$T/ns2.qcow2" "$T/ns2.raw" ||
    fail "the qcow2 image's content is not what the guest wrote"

# A second, short boot without an IOMMU: the error says to turn it on.
rc=0
NVME_GUEST_IOMMU=0 NVME_GUEST_APPEND=nvtest=noiommu \
    nvme_guest_run "$T/console2.log" "${NVME_GUEST_TIMEOUT:-170}" "$R.cpio" \
    -drive "file=$T/ns1.img,if=none,id=n1,format=raw,readonly=on" \
    -device nvme,id=nvme0,serial=nvtest01 -device nvme-ns,drive=n1,bus=nvme0,nsid=1 \
    -device pcie-pci-bridge,id=br0 \
    -device nvme,serial=nvgroup1,bus=br0,addr=1,drive=g1 \
    -drive if=none,id=g1,driver=null-co,size=1M \
    -device nvme,serial=nvgroup2,bus=br0,addr=2,drive=g2 \
    -drive if=none,id=g2,driver=null-co,size=1M \
    >"$T/qemu.out" 2>&1 || rc=$?
grep -a '^NVTEST' "$T/console2.log" | cut -c1-200 | sed 's/^/  guest 2: /' || true
[ $rc -eq 0 ] || { cat "$T/qemu.out"; tail -40 "$T/console2.log"; fail "second guest: qemu exited $rc"; }
grep -aq '^NVTEST no-iommu OK' "$T/console2.log" ||
    { tail -40 "$T/console2.log"; fail "second guest: the no-IOMMU check did not pass"; }
echo ok
