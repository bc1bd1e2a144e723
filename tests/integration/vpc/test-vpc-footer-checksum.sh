#!/bin/bash
# dfvfs' image.vhd and image-differential.vhd carry stale checksums (QEMU
# refuses them, libvhdi reads them): read-only they open with one warning
# per image naming the stored and the computed checksum, and read as
# vhdimount does (the MANIFEST hash); read-write they are refused unless
# ignore_checksum=on; a stale checksum with a field that does not agree is
# still refused, read-only too.
. "$(dirname "$0")/../lib.sh"

want=c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25
mkdir -p "$T/img" "$T/m"
for f in image image-differential; do
    zcat "$DATA/vpc/$f.vhd.gz" >"$T/img/$f.vhd"
done
cd "$T/img"

# one_warning FILE STORED COMPUTED: exactly one warning about FILE in
# $T/warn, naming both checksums
one_warning() {
    local n
    n=$(grep -c "warning: \(.*/\)\?$1: vhd .*checksum mismatch" "$T/warn" || true)
    expect_eq "$n" 1 "warnings about $1 ($(cat "$T/warn"))"
    grep "warning: \(.*/\)\?$1: " "$T/warn" | grep -q "stored 0x$2, computed 0x$3" ||
        fail "$1: warning does not name both checksums: $(cat "$T/warn")"
}

mount_img -r image.vhd "$T/m/image.raw" 2>"$T/warn"
expect_eq "$(sha "$T/m/image.raw")" "$want" "image.vhd read-only"
one_warning image.vhd fffff683 ffffef25
expect_eq "$(grep -c . "$T/warn")" 1 "warning lines for image.vhd"
unmount_img "$T/m/image.raw"
note "image.vhd read-only: $(cat "$T/warn")"

# the differencing disk: its footer and dynamic header sums are both
# stale (one warning for both), and its parent's footer sum
mount_img -r image-differential.vhd "$T/m/diff.raw" 2>"$T/warn"
expect_eq "$(sha "$T/m/diff.raw")" "$want" "image-differential.vhd read-only"
one_warning image-differential.vhd fffff683 ffffeeb6
grep -q "image-differential.vhd: .*dynamic header checksum mismatch (stored 0xfffff476, computed 0xffffe9a5)" \
    "$T/warn" || fail "differencing disk: dynamic header sums not named: $(cat "$T/warn")"
one_warning image.vhd fffff683 ffffef25
unmount_img "$T/m/diff.raw"
note "image-differential.vhd read-only: ok"

# read-write: refused as before, with the same message
for f in image image-differential; do
    expect_fail_within 20 "$IMGFUSE" "$f.vhd" "$T/m/rw.raw"
    expect_err "vhd footer checksum mismatch (stored 0xfffff683, computed 0x"
    expect_err "the image may be damaged, use -o ignore_checksum=on to read it anyway"
done
is_mounted "$T/m/rw.raw" && fail "a read-write mount happened"
note "read-write refused: $(head -1 "$T/err")"

# ignore_checksum=on: a read-write mount opens the disk as before
cp image.vhd rw.vhd
mount_img -o ignore_checksum=on rw.vhd "$T/m/rw.raw" 2>"$T/warn"
expect_eq "$(sha "$T/m/rw.raw")" "$want" "ignore_checksum=on read-write"
grep -q "ignoring vhd footer checksum mismatch" "$T/warn" ||
    fail "ignore_checksum=on: no warning: $(cat "$T/warn")"
unmount_img "$T/m/rw.raw"
note "ignore_checksum=on: ok"

# a stale checksum and a field that does not agree: refused read-only too
bad() {
    python3 - image.vhd "$1.vhd" "$2" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
def be32(o, v):
    for base in (0, len(d) - 512):
        d[base + o:base + o + 4] = struct.pack('>I', v)
def be64(o, v):
    for base in (0, len(d) - 512):
        d[base + o:base + o + 8] = struct.pack('>Q', v)
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
PY
    expect_fail_within 20 "$IMGFUSE" info "$1.vhd"
    expect_err "vhd footer checksum mismatch (stored 0xfffff683"
    expect_err "$3"
    note "$1: $(head -1 "$T/err")"
}
bad version 'be32(12, 0x00020000)' "footer version is not 1.0"
bad cur-size 'be64(48, 104449)' "current size is not a whole number of sectors"
bad geometry 'd[56:58] = d[-456:-454] = struct.pack(">H", 4)' \
    "geometry is larger than its current size"
bad dyn-version 'd[536:540] = struct.pack(">I", 0x00020000)' "dynamic header version is not 1.0"
