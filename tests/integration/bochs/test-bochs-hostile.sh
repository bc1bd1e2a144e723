#!/bin/bash
# Corrupt and hostile bochs images fail with a clear message, never a crash
# or a hang: truncated files, catalogs larger than the file, slots beyond
# the end, huge disk sizes, bitmap and extent sizes that do not match,
# unknown versions and types; undoable and volatile redologs are refused by
# name with what to do; the format is read-only; random damage never
# crashes (run it with IMGFUSE=build-asan/imgfuse too).
. "$(dirname "$0")/../lib.sh"
PY=$(dirname "$0")/bochs.py

zcat "$DATA/bochs/gen-bochs-growing.bochs.gz" >"$T/good.bochs"
size=$(stat -c %s "$T/good.bochs")
"$IMGFUSE" info "$T/good.bochs" >/dev/null || fail "the good image does not open"

# patch NAME PYTHON: a copy of good.bochs changed by a python snippet
# (d, le32, le64; header offsets: version 64, catalog 72, bitmap 76,
# extent 80, disk 88; the catalog at 512)
patch() { python3 "$PY" patch "$T/good.bochs" "$T/$1.bochs" "$2"; }

head -c $((size / 2)) "$T/good.bochs" >"$T/truncated.bochs"
expect_error "$T/truncated.bochs" "points to slot .* beyond the end of the file .*; the image is truncated"
head -c 1000 "$T/good.bochs" >"$T/cut-catalog.bochs"
expect_error "$T/cut-catalog.bochs" "catalog (512 entries at offset 512) is larger than the file"
head -c 100 "$T/good.bochs" >"$T/tiny.bochs"
expect_error "$T/tiny.bochs" "too small to be a bochs image" -F bochs
patch catalog-huge 'le32(72, 0xffffffff)'
expect_error "$T/catalog-huge.bochs" "catalog (4294967295 entries at offset 512) is larger than the file"
patch disk-huge 'le64(88, 1 << 62)'
expect_error "$T/disk-huge.bochs" "disk size 4611686018427387904 needs .* but the catalog has 512"
patch disk-max 'le64(88, (1 << 64) - 1)'
expect_error "$T/disk-max.bochs" "but the catalog has 512"
patch bitmap-small 'le32(80, 8192)'
expect_error "$T/bitmap-small.bochs" "bitmap size 1 does not match the extent size 8192"
patch bitmap-big 'le32(76, 4096)'
expect_error "$T/bitmap-big.bochs" "bitmap size 4096 does not match the extent size 4096"
patch bitmap-zero 'le32(76, 0)'
expect_error "$T/bitmap-zero.bochs" "bitmap size 0 does not match"
patch extent-odd 'le32(80, 1000)'
expect_error "$T/extent-odd.bochs" "invalid bochs extent size 1000"
patch extent-zero 'le32(80, 0)'
expect_error "$T/extent-zero.bochs" "invalid bochs extent size 0"
patch extent-huge 'le32(80, 1 << 31); le32(76, 1 << 19)'
expect_error "$T/extent-huge.bochs" "invalid bochs extent size 2147483648"
patch slot-beyond 'le32(512, 0x7fffffff)'
expect_error "$T/slot-beyond.bochs" "extent 0 points to slot 2147483647, beyond the end"
patch header-small 'le32(68, 100)'
expect_error "$T/header-small.bochs" "header size 100 is too small"
patch version 'le32(64, 0x00030000)'
expect_error "$T/version.bochs" "header version 0x00030000 is not supported"
patch type 'd[32:48] = b"Flat".ljust(16, b"\0")'
expect_error "$T/type.bochs" "image type 'Flat' is not supported"
patch subtype 'd[48:64] = b"Sparse".ljust(16, b"\0")'
expect_error "$T/subtype.bochs" "subtype 'Sparse' is not supported"
patch magic 'd[0:5] = b"Borks"'
expect_error "$T/magic.bochs" "not a bochs image" -F bochs

# undoable and volatile redologs (Bochs writes them while it runs, bximage
# cannot make one): named, with what to do
for mode in Undoable Volatile; do
    patch "$mode" "d[48:64] = b'$mode'.ljust(16, b'\\0')"
    expect_error "$T/$mode.bochs" "bochs '$mode' redolog is not supported: it holds only the changes to a base image"
    grep -q "bximage -func=commit" "$T/err" || fail "$mode: no advice: $(cat "$T/err")"
done

# read-only format: a read-write mount with -F bochs is refused; a probed
# one opens read-only, and writes fail
mkdir -p "$T/m"
expect_fail_within 20 "$IMGFUSE" -F bochs "$T/good.bochs" "$T/m/rw.raw"
expect_err "cannot write them; mount with -r"
note "-F bochs read-write: $(head -1 "$T/err")"
mount_img "$T/good.bochs" "$T/m/probed.raw" 2>/dev/null
if printf 'x' | dd of="$T/m/probed.raw" conv=notrunc status=none 2>/dev/null; then
    fail "a write to a bochs image succeeded"
fi
expect_eq "$(sha "$T/m/probed.raw")" "$(qemu_raw_sha "$T/good.bochs" bochs)" \
    "probed read-write mount's content"
unmount_img "$T/m/probed.raw"
note "probed read-write: opened read-only"

# random damage to the header, catalog and first bitmaps
python3 - "$T/good.bochs" "$T/fz" <<'PY'
import random, sys
d0 = open(sys.argv[1], 'rb').read()
rnd = random.Random(11)
for i in range(30):
    d = bytearray(d0)
    for _ in range(rnd.randint(1, 10)):
        at = rnd.choice([64 + rnd.randrange(32), rnd.randrange(4096)])
        d[at] = rnd.randrange(256)
    open("%s%02d.bochs" % (sys.argv[2], i), 'wb').write(d)
PY
n=0
for f in "$T"/fz*.bochs; do
    rc=0
    timeout 20 "$IMGFUSE" info -F bochs "$f" >/dev/null 2>&1 || rc=$?
    [ $rc -lt 124 ] || fail "$(basename "$f"): rc $rc (hang or crash)"
    if [ $rc -eq 0 ]; then
        # it opened: every byte reads
        mount_img -r -F bochs "$f" "$T/m/fz.raw"
        cat "$T/m/fz.raw" >/dev/null || fail "$(basename "$f"): read failed"
        unmount_img "$T/m/fz.raw"
        n=$((n + 1))
    fi
done
note "30 damaged variants: no crash ($n opened and read)"
