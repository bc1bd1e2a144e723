#!/bin/bash
# Hostile and damaged LUKS1 headers: key material past the end, stripes 0,
# absurd PBKDF2 iteration counts (refused at once, with the reason), a bad
# master key digest, a truncated payload, unknown names and sizes, LUKS2;
# each gives a clear error quickly, never a crash. The v1.0-era layout
# (key material overlapping the header) opens read-only with a warning.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-luks.sh"

base=$T/base.luks
"$IMGFUSE" create -F luks --object "$SEC" \
    -o key-secret=s,iter-time=10,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv \
    "$base" 1M >/dev/null
qemu-io --object "$SEC" --image-opts "driver=luks,key-secret=s,file.filename=$base" \
    -c "write -P 0x77 0 1M" >/dev/null
want=$(qemu_luks_sha "$base")

# Damaged copies of base, all made by one python run (its start-up is the
# slow part): NAME|CODE, where CODE changes the bytearray b. legacy moves
# slot 0's key material to sector 1, over the end of the header (slot
# descriptors 6 and 7 become key material), as cryptsetup 1.0 laid it out.
s0=208
cat > "$T/cases" <<CASES
material-past-end|struct.pack_into('>I', b, $s0 + 40, 0x7fffffff)
stripes-zero|struct.pack_into('>I', b, $s0 + 44, 0)
stripes-huge|struct.pack_into('>I', b, $s0 + 44, 0xffffffff)
iterations-absurd|struct.pack_into('>I', b, $s0 + 4, 0xffffffff)
mk-iterations-absurd|struct.pack_into('>I', b, 164, 0xfffffff0)
bad-digest|b[112] ^= 0x40
payload-past-end|struct.pack_into('>I', b, 104, 0x00ffffff)
payload-over-slot|struct.pack_into('>I', b, 104, 9)
cipher-camellia|b[8:40] = b'camellia'.ljust(32, bytes(1))
mode-benbi|b[40:72] = b'cbc-benbi'.ljust(32, bytes(1))
hash-whirlpool|b[72:104] = b'whirlpool'.ljust(32, bytes(1))
no-nul|b[40:72] = b'x' * 32
key-bytes-odd|struct.pack_into('>I', b, 108, 20)
key-bytes-huge|struct.pack_into('>I', b, 108, 0x10000000)
no-slot|struct.pack_into('>I', b, $s0, 0xdead)
slot-state|struct.pack_into('>I', b, $s0 + 48, 0x12345678)
legacy|o = struct.unpack_from('>I', b, $s0 + 40)[0] * 512; b[512:512 + 64000] = b[o:o + 64000]; struct.pack_into('>I', b, $s0 + 40, 1)
trunc|del b[100000:]
trunc2|del b[50000:]
CASES
python3 - "$base" "$T" "$T/cases" <<'PY'
import random, struct, sys
base, out, cases = sys.argv[1:4]
orig = open(base, "rb").read()
for line in open(cases):
    name, code = line.rstrip("\n").split("|", 1)
    b = bytearray(orig)
    exec(code)
    open(f"{out}/{name}.luks", "wb").write(b)
for i in range(1, 7):   # random damage to the header and key material
    r = random.Random(i)
    b = bytearray(orig)
    for _ in range(6):
        b[r.randrange(4096 if r.random() < .7 else 70000)] = r.randrange(256)
    open(f"{out}/rnd{i}.luks", "wb").write(b)
PY

# bad NAME PATTERN: info fails within 5 s, without a signal, saying PATTERN
# (timeout, not lib.sh's expect_fail_within: its python start per call
# would be most of this test's CPU time)
bad() {
    local rc=0
    timeout -k 2 5 "$IMGFUSE" info --object "$SEC" -o key-secret=s "$T/$1.luks" \
        >/dev/null 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] || fail "$1: opened"
    [ $rc -ne 124 ] && [ $rc -lt 128 ] || fail "$1: hung or crashed (rc $rc)"
    grep -q -- "$2" "$T/err" || fail "$1: '$(cat "$T/err")' lacks '$2'"
    note "$1: $(head -1 "$T/err")"
}
bad material-past-end "key slot 0's key material .* lies beyond the end"
bad stripes-zero "0 stripes"
bad stripes-huge "4294967295 stripes"
bad iterations-absurd \
    "4294967295 PBKDF2 iterations; more than .* hostile header cannot make opening take hours"
bad mk-iterations-absurd "master key digest asks for 4294967280"
bad bad-digest "no key slot matches the passphrase"
bad payload-past-end "beyond the end of the file"
bad payload-over-slot "overlaps the encrypted data"
bad cipher-camellia "cipher 'camellia' is not supported"
bad mode-benbi "IV generator 'cbc-benbi'"
bad hash-whirlpool "hash 'whirlpool' is not supported"
bad no-nul "without its terminating NUL"
bad key-bytes-odd "key size of 20 bytes"
bad key-bytes-huge "key size of 268435456 bytes is invalid"
bad no-slot "no active key slot"
bad slot-state "unknown state 0x12345678"
bad trunc "beyond the end of the file (100000 bytes); the image is truncated"
bad trunc2 "key material (64000 bytes at offset 4096) lies beyond the end"

# LUKS2 (cryptsetup's default now): named, not opened as raw
truncate -s 20M "$T/l2.luks"
cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
    --key-file "$PW" "$T/l2.luks"
bad l2 "LUKS version 2 is not supported"

# no secret and no prompt: says how to give one
expect_fail_within 5 "$IMGFUSE" info "$base"
expect_err "use --object secret,id=ID,file=PATH with key-secret=ID, or --key-prompt"

# the v1.0-era layout: read-only with a warning, the same bytes
expect_eq "$(our_sha "$T/legacy.luks" 2>"$T/warn")" "$want" "legacy layout content"
grep -q "old LUKS layout whose key material overlaps the header .* opened read-only" "$T/warn" ||
    fail "legacy: no warning: $(cat "$T/warn")"
mount_img --object "$SEC" -o key-secret=s "$T/legacy.luks" "$T/l.raw" 2>/dev/null
if dd if=/dev/zero of="$T/l.raw" bs=512 count=1 conv=notrunc,fsync status=none 2>/dev/null; then
    fail "legacy layout: a write went through"
fi
unmount_img "$T/l.raw"
expect_eq "$(our_sha "$T/legacy.luks" 2>/dev/null)" "$want" "legacy layout after a refused write"
note "legacy layout: read-only with a warning, same bytes"

# random damage: may fail, never crash or hang
for f in "$T"/rnd*.luks; do
    rc=0
    timeout 20 "$IMGFUSE" info --object "$SEC" -o key-secret=s "$f" >/dev/null 2>&1 || rc=$?
    [ $rc -lt 124 ] || fail "$(basename "$f"): rc $rc (hang or crash)"
done
note "random damage: no crash"
echo ok
