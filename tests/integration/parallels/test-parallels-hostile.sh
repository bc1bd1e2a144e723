#!/bin/bash
# The format extension (a dirty bitmap; its MD5 as qemu checks it), and
# damaged and hostile Parallels images: a catalog reaching past the end of
# the file, catalog entries pointing past it, an extension past it, a last cluster cut short (all
# read as qemu reads them: zeroes past the end), a huge disk with a tiny
# catalog, and headers that must be refused with a reason (zero or huge
# clusters, a huge catalog or disk size, a file shorter than the header).
# Also run with IMGFUSE=build-asan/imgfuse.
. "$(dirname "$0")/../lib.sh"

mkdir -p "$T/img" "$T/m" "$T/bad"
python3 - "$T" <<'PY'
import struct, sys
t = sys.argv[1]
def hdr(magic, bat, sectors, tracks=8, data_off=0, ext_off=0):
    return magic + struct.pack('<IIIIIQIIIQ', 2, 16, 4, tracks, bat, sectors,
                               0, data_off, 0, ext_off)
def put(name, data):
    open(t + '/' + name, 'wb').write(data)
v1, v2 = b'WithoutFreeSpace', b'WithouFreSpacExt'
# readable: what qemu reads, we read
put('img/catout.hds', hdr(v2, 100000, 8 * 1000, data_off=8).ljust(4096, b'\0'))
put('img/batpast.hds', (hdr(v2, 4, 32, data_off=8) +
    struct.pack('<IIII', 1, 50, 0, 0)).ljust(4096, b'\0') + b'\x11' * 4096)
put('img/partial.hds', (hdr(v1, 4, 32) + struct.pack('<IIII', 8, 0, 0, 0))
    .ljust(4096, b'\0') + b'\x22' * 1000)
put('img/extpast.hds', (hdr(v2, 1, 8, data_off=8, ext_off=1 << 40) +
    struct.pack('<I', 1)).ljust(4096, b'\0') + b'\x33' * 4096)
# a format extension with a dirty bitmap (all ones) and qemu's MD5 over
# the cluster; the same with one byte changed (qemu refuses it)
import hashlib
ext = bytearray(4096)
struct.pack_into('<Q', ext, 0, 0xab234cef23dcea87)
feat = (struct.pack('<QQII', 0x20385fae252cb34a, 0, 40, 0) +
        struct.pack('<Q16sIIQ', 16, bytes(range(16)), 1, 1, 1))
ext[24:24 + len(feat)] = feat
ext[8:24] = hashlib.md5(bytes(ext[24:])).digest()
body = (hdr(v2, 2, 16, data_off=8, ext_off=24) + struct.pack('<II', 1, 0)
        ).ljust(4096, b'\0') + b'\x55' * 4096 + bytes(4096)
put('img/ext.hds', body + bytes(ext))
ext[-1] ^= 1
put('extbad.hds', body + bytes(ext))
# 512 TiB disk, one catalog entry
put('huge.hds', (hdr(v2, 1, 1 << 40, data_off=8) +
    struct.pack('<I', 1)).ljust(4096, b'\0') + b'\x44' * 4096)
# refused
put('bad/zero-cluster.hds', hdr(v2, 1, 8, tracks=0).ljust(512, b'\0'))
put('bad/huge-cluster.hds', hdr(v2, 1, 8, tracks=0x7fffffff).ljust(512, b'\0'))
put('bad/huge-catalog.hds', hdr(v2, 0x80000000, 8).ljust(512, b'\0'))
put('bad/huge-size.hds', hdr(v2, 1, 1 << 62).ljust(512, b'\0'))
put('bad/short.hds', hdr(v2, 1, 8)[:40])
PY

# readable ones: qemu's bytes and holes
mount_img -r "$T"/img/*.hds "$T/m"
for f in catout batpast partial ext; do
    expect_eq "$(sha "$T/m/$f.raw")" "$(qemu_raw_sha "$T/img/$f.hds" parallels)" \
        "$f vs qemu"
done
expect_eq "$(seek_map "$T/m/batpast.raw")" \
    "$(qemu_data_map -f parallels "$T/img/batpast.hds")" "batpast data runs"
# qemu refuses an extension it cannot read; it holds no data, so we read
# the disk and say so
expect_eq "$(head -c 4096 "$T/m/extpast.raw" | tr -d '\063' | wc -c)" 0 "extpast data"
unmount_img "$T/m"
note "catalog and clusters past the end read as qemu reads them"

# the extension: qemu checks its checksum as we do; a bad one is reported
"$IMGFUSE" info "$T/img/ext.hds" >"$T/info"
grep -q "format extension: 1 dirty bitmap(s), 0 unknown feature(s), checksum ok" \
    "$T/info" || fail "ext info: $(cat "$T/info")"
grep -q "dirty bitmap: granularity 512" "$T/info" || fail "ext info: $(cat "$T/info")"
"$IMGFUSE" info "$T/extbad.hds" >"$T/info" 2>&1
grep -q "checksum mismatch" "$T/info" || fail "extbad info: $(cat "$T/info")"
qemu-img info "$T/extbad.hds" >/dev/null 2>&1 && fail "qemu now accepts a bad checksum"
note "format extension: dirty bitmap and checksum as qemu reads them"

# a huge disk: its size, its one cluster, zeroes at the far end, quickly
# (block status must not walk 2^37 clusters past the catalog)
start=$(date +%s)
mount_img -r "$T/huge.hds" "$T/huge.raw"
expect_eq "$(stat -c %s "$T/huge.raw")" $((1 << 49)) "huge disk size"
expect_eq "$(head -c 4096 "$T/huge.raw" | tr -d '\104' | wc -c)" 0 "huge: cluster 0"
expect_eq "$(dd if="$T/huge.raw" bs=4096 skip=$(((1 << 37) - 1)) count=1 \
    status=none | tr -d '\0' | wc -c)" 0 "huge: last cluster"
unmount_img "$T/huge.raw"
[ $(($(date +%s) - start)) -lt 20 ] || fail "the huge disk took $(($(date +%s) - start)) s"
note "a 512 TiB disk with one catalog entry mounts"

# refused, with the reason
refuse() {
    expect_fail_within 10 "$IMGFUSE" -r -F parallels "$T/bad/$1.hds" "$T/out.raw"
    expect_err "$2"
    grep -q "AddressSanitizer\|runtime error" "$T/err" && fail "$1: $(cat "$T/err")"
    note "$1: refused"
}
refuse zero-cluster "zero sectors per cluster"
refuse huge-cluster "is too big"
refuse huge-catalog "catalog of 2147483648 entries is too large"
refuse huge-size "disk size of 4611686018427387904 sectors is too large"
refuse short "too small to be a parallels image"
echo "test-parallels-hostile: ok"
