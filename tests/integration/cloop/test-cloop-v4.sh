#!/bin/bash
# cloop V4 layouts, built by mkcloop.py from the header's description
# (Debian 12's create_compressed_fs writes only V2): the header first and
# the header last ("footer"), blocks compressed with zlib, stored, xz, lz4
# and LZO in turn. Read back equal to the source, probed without -F.
. "$(dirname "$0")/../lib.sh"
# the system python (it has python3-lz4 and python3-lzo), not a slower pyenv shim
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
MK=$(dirname "$0")/mkcloop.py

src=$T/src.raw
{ head -c 400000 /dev/urandom; head -c 500000 /dev/zero
  head -c 123457 /dev/urandom; } >"$src"
len=$(stat -c %s "$src")

for case in head:65536 footer:131072 footer:65536; do
    layout=${case%:*} bs=${case#*:}
    {
        img=$T/v4-$layout-$bs.cloop mnt=$T/mnt-$layout-$bs
        opt=()
        [ $layout = footer ] && opt=(--footer)
        "$PY" "$MK" "$src" "$img" "${opt[@]}" -B $bs \
            --codecs zlib,none,xz,lz4,lzo,zlib || fail "mkcloop $layout $bs"
        touch "$mnt"
        mount_img -r "$img" "$mnt"
        expect_eq "$(stat -c %s "$mnt")" "$(( (len + bs - 1) / bs * bs ))" \
            "$layout $bs: size"
        cmp -n "$len" "$mnt" "$src" || fail "$layout $bs: differs"
        unmount_img "$mnt"
        "$IMGFUSE" info "$img" >"$T/info"
        grep -q "cloop version: 4.0" "$T/info" || fail "info: $(cat "$T/info")"
        grep -q "compression: zlib,none,xz,lz4,lzo" "$T/info" ||
            fail "info: $(cat "$T/info")"
        note "V4 $layout $bs ok"
    }
done
grep -q "header: end" "$T/info" || fail "footer layout: $(cat "$T/info")"

# a V2 image from mkcloop agrees with qemu-img too (the writer is right)
"$PY" "$MK" "$src" "$T/v2.cloop" --v2 -B 65536
qemu-img convert -U -f cloop -O raw "$T/v2.cloop" "$T/q.raw"
cmp -n "$len" "$T/q.raw" "$src" || fail "qemu-img disagrees with mkcloop V2"
