#!/bin/bash
# Hostile encrypted qcow2 images: a damaged crypt header extension or LUKS
# header inside it gives a clear error naming the problem; no crash, no
# hang, no absurd PBKDF2 work, nothing mounted.
. "$(dirname "$0")/../lib.sh"

printf 'pw' > "$T/key"
S=(--object "secret,id=s,file=$T/key" -o encrypt.key-secret=s)
qemu-img create -q -f qcow2 --object "secret,id=s,file=$T/key" \
    -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 "$T/good.qcow2" 4M
"$IMGFUSE" info "${S[@]}" "$T/good.qcow2" >/dev/null || fail "the good image does not open"

# patch DST 'python on bytearray d; x = offset of the crypt extension data,
# c = offset of the LUKS header'
patch() {
    python3 - "$T/good.qcow2" "$T/$1" "$2" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
def be32(o, v): d[o:o + 4] = struct.pack('>I', v)
def be64(o, v): d[o:o + 8] = struct.pack('>Q', v)
o = struct.unpack('>I', d[100:104])[0]
while struct.unpack('>I', d[o:o + 4])[0] != 0x0537be77:
    o += 8 + (struct.unpack('>I', d[o + 4:o + 8])[0] + 7) // 8 * 8
x = o + 8
c = struct.unpack('>Q', d[x:x + 8])[0]
exec(sys.argv[3])
open(sys.argv[2], 'wb').write(d)
PY
}

expect_refused() {  # IMG PATTERN [mount]: info (and a mount) refuse it
    expect_error "$T/$1" "$2" "${S[@]}"
    [ -z "${3:-}" ] && return 0
    expect_fail_within 20 "$IMGFUSE" "${S[@]}" "$T/$1" "$T/mnt-$1"
    is_mounted "$T/mnt-$1" && fail "$1 mounted"
    expect_err "$2"
}

patch extlen.qcow2 'be32(x - 4, 8)'
expect_refused extlen.qcow2 "encryption header extension has 8 bytes, not 16"
patch past-end.qcow2 'be64(x, 1 << 40)'
expect_refused past-end.qcow2 "is not a cluster-aligned range inside the file" mount
patch unaligned.qcow2 'be64(x, c + 512)'
expect_refused unaligned.qcow2 "is not a cluster-aligned range inside the file"
patch wrap.qcow2 'be64(x + 8, (1 << 64) - 4096)'
expect_refused wrap.qcow2 "is not a cluster-aligned range inside the file"
patch short.qcow2 'be64(x + 8, 100)'
expect_refused short.qcow2 "is not a cluster-aligned range inside the file"
patch noext.qcow2 'be32(x - 8, 0x12345678)'
expect_refused noext.qcow2 "no encryption header extension"
patch method.qcow2 'be32(32, 3)'
expect_refused method.qcow2 "unknown encryption method 3"
patch magic.qcow2 'd[c:c + 4] = b"XXXX"'
expect_refused magic.qcow2 "LUKS"
# a key slot asking for 2^32-1 PBKDF2 iterations: refused before any work
patch iters.qcow2 'be32(c + 208 + 4, 0xffffffff)'
start=$(date +%s)
expect_refused iters.qcow2 "iteration" mount
[ $(( $(date +%s) - start )) -lt 30 ] || fail "absurd iteration count: too slow to refuse"
patch stripes.qcow2 'be32(c + 208 + 44, 0)'
expect_refused stripes.qcow2 "stripes"
# key material of slot 0 far past the extension
patch material.qcow2 'be32(c + 208 + 40, 0x7fffffff)'
expect_refused material.qcow2 "key"
# compress=on cannot go with encryption
expect_error "$T/good.qcow2" "compress=on cannot be used with an encrypted image" \
    "${S[@]}" -o compress=on
# a crypt extension in an AES image: refused, as qemu does
qemu-img create -q -f qcow2 --object "secret,id=s,file=$T/key" \
    -o encrypt.format=aes,encrypt.key-secret=s "$T/aes.qcow2" 1M
python3 - "$T/aes.qcow2" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
o = struct.unpack('>I', d[100:104])[0]
# put a bogus crypt extension in front of the others
d[o + 24:] = d[o:len(d) - 24]
d[o:o + 24] = struct.pack('>IIQQ', 0x0537be77, 16, 1 << 50, 1 << 50)
open(sys.argv[1], 'wb').write(d)
PY
expect_refused aes.qcow2 "an encryption header extension without encrypt.format=luks"
echo ok
