#!/bin/bash
# Create and write: images imgfuse creates (QEMU's defaults, and every
# cipher family, mode, IV generator and hash) pass cryptsetup luksDump (and
# open --test-passphrase where cryptsetup can run the cipher without
# device-mapper: aes), and what we write through the mount, random and in
# parallel, is what qemu-img (or, where QEMU cannot, Python's
# `cryptography` with the master key cryptsetup dumps) reads back.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-luks.sh"

qemu_luks_raw() {  # IMAGE OUT
    qemu-img convert --object "$SEC" --image-opts \
        "driver=luks,key-secret=s,file.filename=$1" -O raw "$2"
}
dump_field() { cryptsetup luksDump "$1" | sed -n "s/^$2:[[:space:]]*//p"; }

# defaults: QEMU's (aes-256 xts plain64 sha256) and QEMU's layout
"$IMGFUSE" create -F luks --object "$SEC" -o key-secret=s,iter-time=10 \
    "$T/def.luks" 4M >/dev/null
qemu_luks_create "$T/qdef.luks" 4M ""
for f in "Cipher name" "Cipher mode" "Hash spec" "Payload offset" "MK bits"; do
    expect_eq "$(dump_field "$T/def.luks" "$f")" "$(dump_field "$T/qdef.luks" "$f")" \
        "default $f"
done
expect_eq "$(stat -c %s "$T/def.luks")" "$(stat -c %s "$T/qdef.luks")" "file size"
note "defaults: $(dump_field "$T/def.luks" "Cipher name")-$(dump_field "$T/def.luks" "Cipher mode") $(dump_field "$T/def.luks" "Hash spec") $(dump_field "$T/def.luks" "MK bits") bits, as qemu-img"

# alg mode ivgen ivgen-hash hash oracle
while read -r alg mode ivgen ivh hash oracle; do
    img=$T/w-$alg-$mode-$ivgen-$hash.luks
    "$IMGFUSE" create -F luks --object "$SEC" -o "key-secret=s,iter-time=10,cipher-alg=$alg,cipher-mode=$mode,ivgen-alg=$ivgen,ivgen-hash-alg=$ivh,hash-alg=$hash" \
        "$img" 4M >/dev/null
    cryptsetup luksDump "$img" >/dev/null || fail "$alg-$mode: luksDump refuses it"
    expect_eq "$(dump_field "$img" "Hash spec")" "$hash" "$alg-$mode hash"
    # cryptsetup runs aes without device-mapper; QEMU (and so we) write ecb
    # as "ecb-plain64", which only dm-crypt would take
    case $alg-$mode in
    aes-*-ecb) ;;
    aes-*) cryptsetup open --test-passphrase --key-file "$PW" "$img" ||
               fail "$alg-$mode-$ivgen: cryptsetup refuses the passphrase" ;;
    esac
    # unwritten sectors read as decrypted zeros, noise: start from qemu's view
    if [ "$oracle" = qemu ]; then
        qemu_luks_raw "$img" "$T/shadow"
    else
        oracle_luks_raw "$img" "$PW" "$T/shadow"
    fi
    mount_img --object "$SEC" -o key-secret=s "$img" "$T/m.raw"
    mirror_writes "$T/m.raw" "$T/shadow" 5 8
    unmount_img "$T/m.raw"
    if [ "$oracle" = qemu ]; then
        qemu-img compare -q --object "$SEC" --image-opts \
            "driver=luks,key-secret=s,file.filename=$img" \
            "driver=raw,file.filename=$T/shadow" || fail "$alg-$mode-$ivgen: qemu-img compare"
    else
        expect_eq "$(oracle_luks_sha "$img" "$PW")" "$(sha "$T/shadow")" "$alg-$mode (python)"
    fi
    rm -f "$T/shadow"
    note "create $alg $mode $ivgen:$ivh $hash: cryptsetup accepts, $oracle reads our writes"
done <<'LIST'
aes-256 xts plain64 sha256 sha256 qemu
aes-128 cbc essiv sha256 sha1 qemu
aes-192 cbc plain sha256 sha512 python
aes-256 ctr plain64 sha256 ripemd160 qemu
aes-128 ecb plain64 sha256 sha224 qemu
twofish-128 xts essiv sha256 sha384 qemu
twofish-256 cbc plain sha256 sha256 qemu
serpent-256 xts plain64 sha256 sha512 qemu
serpent-128 ctr essiv md5 sha1 qemu
cast5-128 cbc plain64 sha256 sha256 qemu
LIST

# parallel writers on the default image
qemu_luks_raw "$T/def.luks" "$T/shadow"
mount_img --object "$SEC" -o key-secret=s "$T/def.luks" "$T/m.raw"
mirror_parallel_writes "$T/m.raw" "$T/shadow"
unmount_img "$T/m.raw"
qemu-img compare -q --object "$SEC" --image-opts \
    "driver=luks,key-secret=s,file.filename=$T/def.luks" \
    "driver=raw,file.filename=$T/shadow" || fail "parallel writes: qemu-img compare"
note "4 parallel writers: qemu-img reads the same"

# --create: create and mount in one go, then cp into it
head -c 1M /dev/urandom > "$T/blob"
mount_img --create 2M -F luks --create-opts key-secret=s,iter-time=10,cipher-alg=aes-128 \
    --object "$SEC" -o key-secret=s "$T/new.luks" "$T/new.raw"
dd if="$T/blob" of="$T/new.raw" bs=64k conv=notrunc,fsync status=none
unmount_img "$T/new.raw"
qemu-img convert --object "$SEC" --image-opts "driver=luks,key-secret=s,file.filename=$T/new.luks" \
    -O raw "$T/new.out"
cmp -n 1048576 "$T/blob" "$T/new.out" || fail "--create: qemu-img reads other bytes"
note "--create then dd: qemu-img reads the same"

# bad create options: a clear error, no file left
bad_create() {  # OPTS PATTERN
    local rc=0
    "$IMGFUSE" create -F luks --object "$SEC" -o "$1" "$T/bad.luks" 1M 2>"$T/err" || rc=$?
    [ $rc -ne 0 ] || fail "create -o $1 worked"
    expect_err "$2"
    [ ! -e "$T/bad.luks" ] || fail "create -o $1 left a file"
}
bad_create key-secret=s,cipher-alg=camellia-128 "invalid cipher-alg 'camellia-128'"
bad_create key-secret=s,cipher-alg=cast5-128,cipher-mode=xts "16-byte blocks"
bad_create key-secret=s,ivgen-alg=essiv,ivgen-hash-alg=sha1 "essiv:sha1"
bad_create key-secret=s,iter-time=0 "invalid iter-time"
bad_create key-secret=nope "no secret object 'nope'"
bad_create iter-time=10 "key-secret"
note "bad create options: $(head -1 "$T/err")"
echo ok
