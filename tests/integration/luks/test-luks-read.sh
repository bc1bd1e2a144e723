#!/bin/bash
# Reads: LUKS1 images made by qemu-img (every cipher family, mode and IV
# generator) and by cryptsetup (a key in slot
# 5 too) read byte for byte as qemu-img convert reads them, or, where QEMU
# cannot (aes-192 outside xts, bare "ecb"), as Python's `cryptography`
# decrypts them with the master key cryptsetup dumps. The corpus images give
# the MANIFEST's hashes; a wrong passphrase is refused with the message.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-luks.sh"

# qemu-img images: alg mode ivgen ivgen-hash hash (each qemu-img create
# costs 2 s of CPU in QEMU's PBKDF2 benchmark whatever iter-time says, so
# three cover most families, modes and generators; test-luks-write.sh has
# qemu-img read many more combinations that we create)
while read -r alg mode ivgen ivh hash; do
    img=$T/q-$alg-$mode-$ivgen-$hash.luks
    qemu_luks_create "$img" 1M "cipher-alg=$alg,cipher-mode=$mode,ivgen-alg=$ivgen,ivgen-hash-alg=$ivh,hash-alg=$hash"
    qemu-io --object "$SEC" --image-opts "driver=luks,key-secret=s,file.filename=$img" \
        -c "write -P 0x5a 0 64k" -c "write -P 0xa5 520k 4k" -c "write -P 1 1020k 4k" >/dev/null
    expect_eq "$(our_sha "$img")" "$(qemu_luks_sha "$img")" "qemu-img $alg-$mode-$ivgen:$ivh $hash"
    note "qemu-img $alg $mode $ivgen:$ivh $hash: same bytes"
done <<'LIST'
aes-256 xts plain64 sha256 sha256
serpent-128 ctr plain sha256 sha1
cast5-128 cbc essiv md5 sha512
LIST

# cryptsetup images over random bytes: cipher hash key-bits oracle
head -c 3M /dev/urandom > "$T/noise"
printf 'slot five' > "$T/pw5"
while read -r cipher hash bits oracle; do
    img=$T/c-$cipher-$hash.luks
    cp "$T/noise" "$img"
    cryptsetup luksFormat -q --type luks1 --cipher "$cipher" --hash "$hash" \
        --key-size "$bits" --pbkdf-force-iterations 1000 --key-file "$PW" "$img"
    if [ "$oracle" = qemu ]; then
        want=$(qemu_luks_sha "$img")
    else
        want=$(oracle_luks_sha "$img" "$PW")
    fi
    expect_eq "$(our_sha "$img")" "$want" "cryptsetup $cipher $hash $bits ($oracle)"
    note "cryptsetup $cipher $hash $bits: same bytes as $oracle"
done <<'LIST'
aes-xts-plain64 sha256 512 qemu
aes-cbc-essiv:sha256 sha1 128 qemu
aes-ctr-plain64 sha384 256 qemu
aes-xts-plain sha512 256 qemu
aes-cbc-plain ripemd160 192 python
aes-ecb sha224 256 python
LIST

# a second key in slot 5 opens it too (the first key removed)
img=$T/c-aes-xts-plain64-sha256.luks
cryptsetup luksAddKey -q --key-slot 5 --pbkdf-force-iterations 1000 \
    --key-file "$PW" "$img" "$T/pw5"
cryptsetup luksKillSlot -q "$img" 0 --key-file "$T/pw5"
cryptsetup luksDump "$img" | grep -q "Key Slot 5: ENABLED" || fail "no slot 5"
expect_eq "$(our_sha "$img" "$T/pw5")" "$(qemu_luks_sha "$img" "$T/pw5")" "slot 5"
"$IMGFUSE" info --object "secret,id=k,file=$T/pw5" -o key-secret=k "$img" |
    grep -q "unlocked key slot: 5" || fail "slot 5 not reported"
note "key slot 5 (slot 0 removed): same bytes"

# wrong passphrase: the message, a non-zero exit, nothing mounted
rc=0
"$IMGFUSE" -r --object "$SEC" -o key-secret=s "$img" "$T/w.raw" 2>"$T/err" || rc=$?
[ $rc -ne 0 ] || fail "mounted with the wrong passphrase"
expect_eq "$(cat "$T/err")" "imgfuse: $img: no key slot matches the passphrase" "message"
is_mounted "$T/w.raw" && fail "something mounted"
note "wrong passphrase: $(cat "$T/err")"

# the corpus: cryptsetup's own test images and qemu-made ones
pub=$SHARED_IMAGES/public/cryptsetup gen=$SHARED_IMAGES/generated
printf 'compatkey' > "$T/compat"
expect_eq "$(our_sha "$pub/compatimage.luks" "$T/compat")" \
    f6d03b6fd5a07b538fc445b6758f5900ca24da87b6ccfd5c382cb34458d7a1d4 compatimage.luks
cryptsetup open --test-passphrase --key-file "$pub/luks1-keyfile1" \
    "$pub/luks1_aes-cbc-essiv-sha256-sha1.luks"
expect_eq "$(our_sha "$pub/luks1_aes-cbc-essiv-sha256-sha1.luks" "$pub/luks1-keyfile1")" \
    "$(oracle_luks_sha "$pub/luks1_aes-cbc-essiv-sha256-sha1.luks" "$pub/luks1-keyfile1")" \
    "luks1_aes-cbc-essiv-sha256-sha1.luks (binary key file)"
printf 'corpus-passphrase' > "$T/corpus"
for f in gen-luks1-aes-xts.luks gen-luks1-aes128-cbc-essiv.luks; do
    expect_eq "$(our_sha "$gen/$f" "$T/corpus")" \
        b88a18a101294e07d66e2b0327cc00509fc32e4f3cff34a356c7be1b869e74ce "$f"
done
note "corpus: compatimage, luks1_aes-cbc-essiv-sha256-sha1 (key file), gen-luks1-*: MANIFEST hashes"
echo ok
