#!/bin/bash
# Synthetic images from scripts/mkimage-dmg.py: LZMA and comment chunks, a
# data fork not at offset 0, a mish data offset, gaps, several partitions,
# and the resource-fork form. Checked against the script's expected raw
# content, and against qemu-img where QEMU reads the codecs.
. "$(dirname "$0")/../lib.sh"

python3 "$ROOT/scripts/mkimage-dmg.py" "$T/gen"
for name in all-codecs qemu-compat rsrc-fork; do
    mnt=$T/mnt-$name
    mount_img -F dmg -r "$T/gen/$name.dmg" "$mnt"
    expect_eq "$(sha "$mnt")" "$(sha "$T/gen/$name.raw")" "$name content"
    # small reads that straddle chunk boundaries go through the chunk cache
    expect_eq "$(dd if="$mnt" bs=3584 status=none | sha256sum | cut -d' ' -f1)" \
        "$(sha "$T/gen/$name.raw")" "$name read in 3.5 KiB pieces"
    unmount_img "$mnt"
    note "$name ok"
done
for name in qemu-compat rsrc-fork; do
    expect_eq "$(qemu_raw_sha "$T/gen/$name.dmg" dmg)" "$(sha "$T/gen/$name.raw")" \
        "qemu-img on $name"
done

# a cache smaller than one chunk, and no cache at all, read the same bytes
for cs in 1M 0; do
    mnt=$T/mnt-cache-$cs
    mount_img -F dmg -r -o cache-size=$cs "$T/gen/all-codecs.dmg" "$mnt"
    expect_eq "$(sha "$mnt")" "$(sha "$T/gen/all-codecs.raw")" "cache-size=$cs"
    unmount_img "$mnt"
done
