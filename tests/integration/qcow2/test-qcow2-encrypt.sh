#!/bin/bash
# Encrypted qcow2 (encrypt.format=luks and aes) and qcow (AES), against
# qemu-img/qemu-io with --object secret in both directions: qemu reads what
# we wrote byte-exact and we read what qemu wrote; a backing chain whose
# layers have their own secrets; a wrong passphrase; the weak-AES warning.
. "$(dirname "$0")/../lib.sh"

printf 'correct horse' > "$T/k1"
printf 'battery staple' > "$T/k2"
Q1=(--object "secret,id=s1,file=$T/k1")
Q2=(--object "secret,id=s2,file=$T/k2")
# qopts FMT FILE [more]: qemu's --image-opts string for a layer keyed by s1
qopts() { echo "driver=$1,file.filename=$2,encrypt.key-secret=s1${3:+,$3}"; }
head -c 3M /dev/urandom > "$T/src.raw"

# 1. qemu writes, we read: luks (two cipher setups) and aes
n=0
for o in "encrypt.format=luks" \
         "encrypt.format=luks,encrypt.cipher-alg=serpent-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha512" \
         "encrypt.format=aes"; do
    n=$((n + 1)); img=$T/q$n.qcow2
    fast=; [[ $o == *luks* ]] && fast=,encrypt.iter-time=10
    qemu-img create -q -f qcow2 "${Q1[@]}" -o "$o,encrypt.key-secret=s1$fast" "$img" 4M
    qemu-io "${Q1[@]}" --image-opts "$(qopts qcow2 "$img")" \
        -c "write -P 0x5a 100k 300k" -c "write -P 0xc3 2M 64k" >/dev/null
    qemu-img convert "${Q1[@]}" --image-opts "$(qopts qcow2 "$img")" -O raw "$T/want.raw"
    "$IMGFUSE" info "${Q1[@]}" -o encrypt.key-secret=s1 "$img" > "$T/info" 2>"$T/err"
    f=${o#encrypt.format=}
    grep -q "encrypt.format: ${f%%,*}" "$T/info" || fail "info of $img: $(cat "$T/info")"
    mount_img "${Q1[@]}" -o encrypt.key-secret=s1 "$img" "$T/m$n" 2>"$T/err"
    cmp "$T/m$n" "$T/want.raw" || fail "$o: we read other bytes than qemu"
    if [[ $o == *aes* ]]; then
        expect_eq "$(grep -c 'AES encryption is weak' "$T/err")" 1 "one weak-AES warning per open"
    fi
    # 2. we write (unaligned, over allocated and fresh clusters); qemu reads it
    dd if="$T/src.raw" of="$T/m$n" bs=1000 seek=7 count=2000 conv=notrunc status=none
    cp "$T/m$n" "$T/ours.raw"
    unmount_img "$T/m$n"
    qemu-img compare -q "${Q1[@]}" --image-opts "$(qopts qcow2 "$img")" \
        "driver=raw,file.filename=$T/ours.raw" || fail "$o: qemu reads other bytes than we wrote"
    qemu-img check -q "${Q1[@]}" --image-opts "$(qopts qcow2 "$img")" || fail "$o: qemu-img check"
    note "$o: both directions byte-exact"
done

# 3. we create (every encrypt.* option), qemu reads and checks it
img=$T/ours.qcow2
"$IMGFUSE" create -F qcow2 "${Q1[@]}" -o encrypt.format=luks,encrypt.key-secret=s1,encrypt.cipher-alg=twofish-256,encrypt.cipher-mode=xts,encrypt.ivgen-alg=plain64,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha256,encrypt.iter-time=20 "$img" 3M >/dev/null
qemu-img info "$img" | grep -q "cipher alg: twofish-256" || fail "qemu-img info: $(qemu-img info "$img")"
mount_img "${Q1[@]}" -o encrypt.key-secret=s1 "$img" "$T/mc"
dd if="$T/src.raw" of="$T/mc" bs=1M conv=notrunc status=none
unmount_img "$T/mc"
qemu-img compare -q "${Q1[@]}" --image-opts "$(qopts qcow2 "$img")" \
    "driver=raw,file.filename=$T/src.raw" || fail "created luks qcow2: qemu reads other bytes"
qemu-img check -q "${Q1[@]}" --image-opts "$(qopts qcow2 "$img")" || fail "created: qemu-img check"
"$IMGFUSE" create -F qcow2 "${Q1[@]}" -o encryption=on,encrypt.key-secret=s1 "$T/aes.qcow2" 1M \
    >/dev/null 2>"$T/err"
grep -q "weak" "$T/err" || fail "no warning creating an AES image"
qemu-img info "$T/aes.qcow2" | grep -q "format: aes" || fail "encryption=on is not aes"
note "created luks (twofish-256-xts) and aes images: qemu reads and checks them"

# 4. a chain where each layer has its own secret
qemu-img create -q -f qcow2 "${Q2[@]}" -o encrypt.format=luks,encrypt.key-secret=s2,encrypt.iter-time=10,backing_file="$img",backing_fmt=qcow2 "$T/top.qcow2" 3M
qemu-io "${Q1[@]}" "${Q2[@]}" --image-opts "driver=qcow2,file.filename=$T/top.qcow2,encrypt.key-secret=s2,backing.encrypt.key-secret=s1" \
    -c "write -P 0x77 1M 4k" >/dev/null
qemu-img convert "${Q1[@]}" "${Q2[@]}" --image-opts "driver=qcow2,file.filename=$T/top.qcow2,encrypt.key-secret=s2,backing.encrypt.key-secret=s1" -O raw "$T/want.raw"
mount_img -r "${Q1[@]}" "${Q2[@]}" -o encrypt.key-secret=s2,backing.encrypt.key-secret=s1 "$T/top.qcow2" "$T/mt"
cmp "$T/mt" "$T/want.raw" || fail "chain: we read other bytes than qemu"
unmount_img "$T/mt"
expect_error "$T/top.qcow2" "with backing.encrypt.key-secret=ID" "${Q2[@]}" -o encrypt.key-secret=s2
note "chain with two secrets: same bytes as qemu"

# 5. a wrong passphrase: a clear error, non-zero, nothing mounted
printf 'wrong' > "$T/bad"
rc=0
"$IMGFUSE" --object "secret,id=s1,file=$T/bad" -o encrypt.key-secret=s1 "$img" "$T/mw" 2>"$T/err" || rc=$?
[ $rc -ne 0 ] || fail "a wrong passphrase mounted"
is_mounted "$T/mw" && fail "mounted with a wrong passphrase"
expect_err "ours.qcow2: no key slot matches the passphrase"
if grep -q "wrong" "$T/err"; then fail "the passphrase is in the error"; fi
expect_error "$img" "no secret object 'nope'" -o encrypt.key-secret=nope
note "wrong passphrase: $(head -1 "$T/err")"

# 6. qcow (v1) AES, both directions
qemu-img create -q -f qcow "${Q1[@]}" -o encrypt.format=aes,encrypt.key-secret=s1 "$T/v1.qcow" 2M
qemu-io "${Q1[@]}" --image-opts "$(qopts qcow "$T/v1.qcow")" -c "write -P 0x21 5k 200k" >/dev/null
qemu-img convert "${Q1[@]}" --image-opts "$(qopts qcow "$T/v1.qcow")" -O raw "$T/want.raw"
mount_img "${Q1[@]}" -o encrypt.key-secret=s1 "$T/v1.qcow" "$T/mq" 2>"$T/err"
expect_eq "$(grep -c 'qcow AES encryption is weak' "$T/err")" 1 "one weak-AES warning for qcow"
cmp "$T/mq" "$T/want.raw" || fail "qcow aes: we read other bytes than qemu"
dd if="$T/src.raw" of="$T/mq" bs=1000 seek=3 count=1500 conv=notrunc status=none
cp "$T/mq" "$T/ours.raw"
unmount_img "$T/mq"
qemu-img compare -q "${Q1[@]}" --image-opts "$(qopts qcow "$T/v1.qcow")" \
    "driver=raw,file.filename=$T/ours.raw" || fail "qcow aes: qemu reads other bytes than we wrote"
note "qcow aes: both directions byte-exact"

# 7. a stored image made by qemu-img (cast5-128-cbc-plain64, 4 KiB clusters)
gunzip -c "$DATA/qcow2/gen-luks-cast5.qcow2.gz" > "$T/cast5.qcow2"
{ head -c 16384 /dev/zero | tr '\0' 'B'; head -c $((1048576 - 16384)) /dev/zero; } > "$T/want.raw"
mount_img -r --object secret,id=s,data=seed -o encrypt.key-secret=s "$T/cast5.qcow2" "$T/m7" 2>/dev/null
cmp "$T/m7" "$T/want.raw" || fail "gen-luks-cast5.qcow2: other bytes than qemu wrote"
unmount_img "$T/m7"
echo ok
