#!/bin/bash
# imgfuse create -F vpc with each option gives what qemu-img create gives
# (size rounding, layout, qemu-img info), and cp of a raw file into a
# freshly created mount produces an image qemu reads back equal.
. "$(dirname "$0")/../lib.sh"

# a source with data, a hole and a size that is not a CHS multiple
head -c 5M /dev/urandom >"$T/src.raw"
truncate -s 12M "$T/src.raw"
head -c 1M /dev/urandom >>"$T/src.raw"
size=$(stat -c %s "$T/src.raw")

for opts in subformat=dynamic subformat=fixed subformat=dynamic,force_size=on \
            subformat=fixed,force_size=on; do
    ours=$T/ours.vhd theirs=$T/theirs.vhd
    rm -f "$ours" "$theirs"
    "$IMGFUSE" create -F vpc -o "$opts" "$ours" "$size" >/dev/null
    qemu-img create -q -f vpc -o "$opts" "$theirs" "$size"
    expect_eq "$(stat -c %s "$ours")" "$(stat -c %s "$theirs")" "$opts: file size"
    qi() { qemu-img info -f vpc --output=json "$1" | python3 -c '
import json, sys; print(json.load(sys.stdin)["virtual-size"])'; }
    expect_eq "$(qi "$ours")" "$(qi "$theirs")" "$opts: virtual size in qemu"
    # everything but the timestamp, unique id and checksum matches qemu's
    python3 - "$ours" "$theirs" <<'PY' || fail "$opts: footer differs from qemu's"
import sys
a, b = (open(f, 'rb').read() for f in sys.argv[1:3])
fa, fb = a[-512:], b[-512:]
for lo, hi in ((0, 24), (28, 64), (84, 512)):
    if fa[lo:hi] != fb[lo:hi]:
        sys.exit(1)
if a[512:1536] != b[512:1536] or len(a) != len(b):
    sys.exit(1)                 # dynamic header and BAT, or fixed data
PY

    # --create then cp a raw file into the mount
    rm -f "$ours"
    mount_img --create "$size" --create-opts "$opts" -F vpc "$ours" "$T/new.raw"
    cp "$T/src.raw" "$T/new.raw"
    unmount_img "$T/new.raw"
    # CHS rounding may make the image larger than the source: compare
    # wants the tail to read as zeroes then
    qemu-img compare -q -f vpc -F raw "$ours" "$T/src.raw" 2>"$T/err" ||
        fail "$opts: cp into a new mount: $(cat "$T/err")"
    note "$opts: ok"
done

if "$IMGFUSE" create -F vpc -o subformat=sparse "$T/bad.vhd" 1M 2>"$T/err"; then
    fail "subformat=sparse accepted"
fi
grep -qi "subformat" "$T/err" || fail "bad subformat message: $(cat "$T/err")"
if "$IMGFUSE" create -F vpc "$T/huge.vhd" 3T 2>"$T/err"; then
    fail "a 3 TiB vhd was created"
fi
grep -q "too large" "$T/err" || fail "huge vhd message: $(cat "$T/err")"
