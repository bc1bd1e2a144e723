#!/bin/bash
# Hostile and unsupported dmg files fail with a clear message, never a
# crash or a hang: encrypted, truncated, damaged trailer and plist, a
# corrupt chunk (the open succeeds, the read fails with EIO).
. "$(dirname "$0")/../lib.sh"

# expect_open_error FILE PATTERN
expect_open_error() {
    local img=$1 pattern=$2 rc=0 mnt=$T/mnt-err.$RANDOM
    mount_img -F dmg -r "$img" "$mnt" 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] || fail "$img mounted; expected: $pattern"
    [ $rc -lt 128 ] || fail "$img: imgfuse died with signal $((rc - 128))"
    grep -q -- "$pattern" "$T/err" ||
        fail "$img: message '$(cat "$T/err")' lacks '$pattern'"
    note "$(basename "$img"): $(head -1 "$T/err")"
}

expect_open_error "$DATA/dmg/input_aes256.dmg" \
    "encrypted disk images are not supported"

src=$DATA/dmg/input_zlib.dmg
size=$(stat -c %s "$src")
head -c $((size - 100)) "$src" >"$T/cut-trailer.dmg"
expect_open_error "$T/cut-trailer.dmg" "no UDIF trailer"
head -c 300 "$src" >"$T/tiny.dmg"
expect_open_error "$T/tiny.dmg" "too short"

# trailer intact, data fork and plist cut away underneath it
{ head -c 2000 "$src"; tail -c 512 "$src"; } >"$T/hollow.dmg"
expect_open_error "$T/hollow.dmg" "beyond the end of the file"

# the plist is not XML any more
python3 - "$src" "$T/badxml.dmg" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
xo, xl = struct.unpack('>QQ', d[-512 + 216:-512 + 232])
d[xo:xo + 40] = b'<plist><dict><key>&bogus;<<<' + b' ' * 11
open(sys.argv[2], 'wb').write(d)
PY
expect_open_error "$T/badxml.dmg" "not well-formed XML"

# an entity bomb in the plist (billion laughs) is refused, not expanded
python3 - "$src" "$T/bomb.dmg" "$T/entity.dmg" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
k = bytearray(d[-512:])
xo, xl = struct.unpack('>QQ', k[216:232])
for out, ents in (
        (sys.argv[2], '<!ENTITY a0 "AAAAAAAAAA">' + ''.join(
            '<!ENTITY a%d "%s">' % (i, ('&a%d;' % (i - 1)) * 10)
            for i in range(1, 10))),
        (sys.argv[3], '<!ENTITY a9 "bWlzaA==">')):
    xml = ('<?xml version="1.0"?><!DOCTYPE plist [%s]><plist><dict>'
           '<key>resource-fork</key><dict><key>blkx</key><array><dict>'
           '<key>Data</key><data>&a9;</data></dict></array></dict></dict>'
           '</plist>' % ents).encode()
    k[216:232] = struct.pack('>QQ', xo, len(xml))
    open(out, 'wb').write(d[:xo] + xml + bytes(k))
PY
expect_open_error "$T/bomb.dmg" "declares entities\|not well-formed XML"
expect_open_error "$T/entity.dmg" "declares entities"

# a chunk whose zlib data is garbage: the open works, reading it is EIO
python3 - "$src" "$T/badchunk.dmg" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[0:64] = bytes(range(64))         # chunk data at fork offset 0
open(sys.argv[2], 'wb').write(d)
PY
mnt=$T/mnt-badchunk
mount_img -F dmg -r "$T/badchunk.dmg" "$mnt"
if dd if="$mnt" of=/dev/null bs=1M 2>"$T/dd.err"; then
    fail "reading a corrupt chunk succeeded"
fi
grep -q "Input/output error" "$T/dd.err" || fail "dd: $(cat "$T/dd.err")"
unmount_img "$mnt"
