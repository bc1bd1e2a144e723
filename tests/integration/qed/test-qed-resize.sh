#!/bin/bash
# qed resize through a --growable mount, compared with `qemu-img resize` on
# a copy: grows (aligned, unaligned to clusters, over a partly used last
# cluster) give the same virtual size and bytes as QEMU's, qemu-img check
# stays clean; a shrink is refused with a clear message naming the image
# (QEMU's qed cannot shrink either). Hostile cases: test-qed-resize-hostile.sh.
# Also qcow (version 1), which QEMU cannot resize: refused by name.
. "$(dirname "$0")/../lib.sh"

vsize() {
    qemu-img info -f "$2" --output=json "$1" |
        sed -n 's/^ *"virtual-size": \([0-9]*\),*$/\1/p' | head -1
}

# grow IMAGE SIZE WHAT: truncate on the mount, qemu-img resize on a copy
# made before, then both compared
grow() {
    local img=$1 size=$2 what=$3
    cp "$img" "$T/q.qed"
    mount_img --growable -F qed "$img" "$T/m.raw"
    truncate -s "$size" "$T/m.raw"
    expect_eq "$(stat -c %s "$T/m.raw")" "$size" "$what: size on the mount"
    unmount_img "$T/m.raw"
    qemu-img resize -q -f qed "$T/q.qed" "$size" || fail "$what: qemu-img resize"
    expect_eq "$(vsize "$img" qed)" "$size" "$what: qemu-img virtual size"
    qemu-img check -f qed "$img" >"$T/check" 2>&1 ||
        fail "$what: qemu-img check: $(cat "$T/check")"
    qemu-img compare -q -f qed -F qed "$img" "$T/q.qed" ||
        fail "$what: the image differs from QEMU's resized copy"
}

# refuse FMT IMAGE SIZE WHAT PATTERN: the truncate fails, the size stays,
# the daemon (in the foreground: its messages on stderr) names the image
refuse() {
    local fmt=$1 img=$2 size=$3 what=$4 pat=$5 before pid i
    "$IMGFUSE" -f --growable -F "$fmt" "$img" "$T/m.raw" 2>"$T/log" &
    pid=$!
    _MOUNTS+=("$T/m.raw")
    for i in $(seq 1 100); do
        grep -q " $T/m.raw fuse" /proc/mounts && break
        sleep 0.05
    done
    before=$(stat -c %s "$T/m.raw")
    truncate -s "$size" "$T/m.raw" 2>"$T/err" && fail "$what was accepted"
    expect_eq "$(stat -c %s "$T/m.raw")" "$before" "$what: size after the refusal"
    fusermount3 -u "$T/m.raw"
    wait "$pid" || true
    grep -q "$(basename "$img").*$pat" "$T/log" ||
        fail "$what: no clear message: $(cat "$T/log" "$T/err")"
}

img=$T/a.qed
qemu-img create -q -f qed -o cluster_size=64K "$img" $((8 << 20 | 512))
qemu-io -f qed -c "write -P 0x5c 0 5M" -c "write -P 0x5d 8M 512" "$img" >/dev/null
grow "$img" $((100 << 20)) "grow over the last cluster"
grow "$img" $((2 << 30 | 4608)) "grow past the first L2 table, unaligned"
refuse qed "$img" $((10 << 20)) "a qed shrink" "cannot shrink.*qed images only grow"

img=$T/v1.qcow
qemu-img create -q -f qcow "$img" 4M
refuse qcow "$img" $((8 << 20)) "a qcow (version 1) grow" "qcow (version 1) images cannot be resized"
echo "ok"
