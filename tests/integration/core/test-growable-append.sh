#!/bin/bash
# A growable mount written past its end by dd: the kernel's writeback sends
# several writes past the end at once, and one that saw the old size must
# not cut back what a longer one grew meanwhile (it did: chunks of zeroes
# in the image, every run). The image must equal the source, with and
# without the preallocate filter, on a raw and on a new qcow2 image.
. "$(dirname "$0")/../lib.sh"

head -c 48M /dev/urandom >"$T/src"
for opt in "" --preallocate=4M; do
    : >"$T/a.raw"
    mount_img --growable $opt "$T/a.raw" "$T/m.raw"
    dd if="$T/src" of="$T/m.raw" bs=1M conv=notrunc status=none
    unmount_img "$T/m.raw"
    cmp "$T/a.raw" "$T/src" || fail "raw ${opt:-without filter}: lost writes"
    rm -f "$T/a.qcow2"
    qemu-img create -q -f qcow2 "$T/a.qcow2" 0
    mount_img --growable $opt "$T/a.qcow2" "$T/m.raw"
    dd if="$T/src" of="$T/m.raw" bs=1M conv=notrunc status=none
    unmount_img "$T/m.raw"
    qemu-img check -q "$T/a.qcow2" || fail "qcow2 ${opt:-without filter}: check"
    qemu-img compare -q -f qcow2 -F raw "$T/a.qcow2" "$T/src" ||
        fail "qcow2 ${opt:-without filter}: lost writes"
    note "48 MiB appended through a growable mount ${opt:-without filter}: equal"
done
