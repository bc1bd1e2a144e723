#!/bin/bash
# Names stored in an image over SFTP are paths on the same server: qcow2
# backing files (relative and absolute), vmdk extents, with confinement,
# loops and names that exist only on this host; and `imgfuse create` onto
# an ssh:// URI, with its extents, data file or parent on the same server.
# The sshd is chrooted, so server path /x is $SSH_ROOT/x here and qemu-img
# reads the same files directly as the oracle.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/ssh-lib.sh"

start_sshd_chroot
start_agent
R=$SSH_ROOT
mkdir -p "$R/d"

qemu-img create -q -f qcow2 "$R/d/base.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x31 0 3M' -c 'write -P 0x32 8M 1M' \
    "$R/d/base.qcow2" > /dev/null

note "relative backing name: the base next to the image on the server"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$R/d/top.qcow2"
qemu-io -f qcow2 -c 'write -P 0x41 1M 512k' "$R/d/top.qcow2" > /dev/null
want=$(qemu_raw_sha "$R/d/top.qcow2" qcow2)
mount_img "$(ssh_uri /d/top.qcow2)" "$T/top"
expect_eq "$(sha "$T/top")" "$want" "qcow2 with a relative backing file over ssh"
head -c 2000000 /dev/urandom > "$T/rand"
dd if="$T/rand" of="$T/top" bs=4096 seek=700 conv=notrunc,fsync status=none
dd if="$T/rand" of="$T/top" bs=512 seek=3 count=7 conv=notrunc,fsync status=none
cp "$T/top" "$T/top.shadow"
unmount_img "$T/top"
oracle_agrees "$R/d/top.qcow2" qcow2 "$T/top.shadow" "top.qcow2 (with its base) after writes over ssh"

note "absolute backing name: a path on the server, not on this host"
qemu-img create -q -f qcow2 -b "$R/d/base.qcow2" -F qcow2 "$R/d/abs.qcow2"
qemu-io -f qcow2 -c 'write -P 0x51 9M 64k' "$R/d/abs.qcow2" > /dev/null
want=$(qemu_raw_sha "$R/d/abs.qcow2" qcow2)
mkdir -p "$R/other"
mv "$R/d/abs.qcow2" "$R/other/abs.qcow2"
qemu-img rebase -u -b /d/base.qcow2 -F qcow2 "$R/other/abs.qcow2"
mount_img "$(ssh_uri /other/abs.qcow2)" "$T/abs"
expect_eq "$(sha "$T/abs")" "$want" "qcow2 with an absolute server backing path"
dd if="$T/rand" of="$T/abs" bs=64k seek=100 count=5 conv=notrunc,fsync status=none
cp "$T/abs" "$T/abs.shadow"
unmount_img "$T/abs"
qemu-img rebase -u -b "$R/d/base.qcow2" -F qcow2 "$R/other/abs.qcow2"
qemu-img check -q "$R/other/abs.qcow2" || fail "qemu-img check fails (absolute backing)"
qemu-img compare -q -f qcow2 -F raw "$R/other/abs.qcow2" "$T/abs.shadow" ||
    fail "abs.qcow2 differs from what the mount showed"

note "a backing name that exists on this host but not on the server"
qemu-img create -q -f qcow2 -b "$R/d/base.qcow2" -F qcow2 "$R/d/local.qcow2"
expect_fail_within 20 "$IMGFUSE" info "$(ssh_uri /d/local.qcow2)"
expect_err "is not on the server"
expect_err "--backing=none"
"$IMGFUSE" info --backing=none "$(ssh_uri /d/local.qcow2)" > /dev/null ||
    fail "--backing=none does not open an image whose backing file is missing"

note "confinement: ../ and a symlink out of the image's directory"
qemu-img create -q -f qcow2 "$R/outside.qcow2" 16M
qemu-img create -q -f qcow2 -b ../outside.qcow2 -F qcow2 "$R/d/up.qcow2"
ln -s ../outside.qcow2 "$R/d/link.qcow2"
qemu-img create -q -f qcow2 -b link.qcow2 -F qcow2 "$R/d/vialink.qcow2"
for img in up vialink; do
    for pol in --untrusted --backing=confine; do
        expect_fail_within 20 "$IMGFUSE" info $pol "$(ssh_uri /d/$img.qcow2)"
        expect_err "lies outside /d on the server"
    done
    "$IMGFUSE" info "$(ssh_uri /d/$img.qcow2)" > /dev/null ||
        fail "$img.qcow2 does not open with --backing=follow"
done
"$IMGFUSE" info --untrusted "$(ssh_uri /d/top.qcow2)" > /dev/null ||
    fail "--untrusted refuses a backing file next to the image"

note "a backing loop on the server, also through a symlink"
qemu-img create -q -f qcow2 "$R/d/a.qcow2" 1M
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 "$R/d/b.qcow2"
qemu-img rebase -u -b b.qcow2 -F qcow2 "$R/d/a.qcow2"
expect_fail_within 20 "$IMGFUSE" info "$(ssh_uri /d/a.qcow2)"
expect_err "the backing chain loops"
ln -s self.qcow2 "$R/d/me.qcow2"
qemu-img create -q -f qcow2 "$R/d/self.qcow2" 1M
qemu-img rebase -u -b me.qcow2 -F qcow2 "$R/d/self.qcow2"
expect_fail_within 20 "$IMGFUSE" info "$(ssh_uri /d/self.qcow2)"
expect_err "the backing chain loops"

note "vmdk twoGbMaxExtentSparse: extents found next to the descriptor"
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$R/d/big.vmdk" 5G
[ "$(ls "$R"/d/big-s00*.vmdk | wc -l)" -ge 3 ] || fail "expected 3 extent files"
qemu-io -f vmdk -c 'write -P 0x61 1M 64k' -c 'write -P 0x62 2047M 2M' \
    -c 'write -P 0x63 4100M 64k' "$R/d/big.vmdk" > /dev/null
mount_img "$(ssh_uri /d/big.vmdk)" "$T/big"
expect_eq "$(stat -c %s "$T/big")" 5368709120 "vmdk size"
# expect_bytes FILE OFF LEN CHAR: LEN bytes at OFF are all CHAR
expect_bytes() {
    cmp <(dd if="$1" iflag=skip_bytes,count_bytes skip=$2 count=$3 status=none) \
        <(head -c $3 /dev/zero | tr '\0' "$4") || fail "$1: wrong data at $2"
}
expect_bytes "$T/big" $((1 << 20)) 65536 a
expect_bytes "$T/big" $((2047 << 20)) $((2 << 20)) b
expect_bytes "$T/big" $((4100 << 20)) 65536 c
cmp <(dd if="$T/big" bs=1M skip=3000 count=1 status=none) <(head -c 1M /dev/zero) ||
    fail "an unallocated vmdk area does not read as zeroes"
# across the boundary of the first and second extent
head -c 8192 /dev/zero | tr '\0' w | dd of="$T/big" bs=4096 seek=$((2048 * 256 - 1)) \
    conv=notrunc,fsync status=none
head -c 4096 /dev/zero | tr '\0' x | dd of="$T/big" bs=4096 seek=$((4500 * 256)) \
    conv=notrunc,fsync status=none
unmount_img "$T/big"
qemu-img check -q "$R/d/big.vmdk" || fail "qemu-img check fails after vmdk writes over ssh"
out=$(qemu-io -r -f vmdk -c "read -P 0x77 $((2048 * 1048576 - 4096)) 8192" \
    -c "read -P 0x78 $((4500 * 1048576)) 4096" -c 'read -P 0x63 4100M 64k' \
    "$R/d/big.vmdk")
! echo "$out" | grep -q "Pattern verification failed" ||
    fail "qemu-io does not read back what was written: $out"

note "imgfuse create onto ssh://, and never over an existing file"
"$IMGFUSE" create -F qcow2 "$(ssh_uri /d/new.qcow2)" 64M > /dev/null ||
    fail "create over ssh failed"
qemu-img check -q "$R/d/new.qcow2" || fail "qemu-img check fails on a qcow2 created over ssh"
expect_eq "$(qemu-img info --output=json "$R/d/new.qcow2" | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" 67108864 "created size"
before=$(sha "$R/d/new.qcow2")
expect_fail_within 20 "$IMGFUSE" create -F qcow2 "$(ssh_uri /d/new.qcow2)" 32M
expect_err "already exists"
expect_eq "$(sha "$R/d/new.qcow2")" "$before" "an existing file after a refused create"
mount_img --create 8M -F qcow2 "$(ssh_uri /d/mnt.qcow2)" "$T/new"
head -c 1M /dev/urandom > "$T/r1"
dd if="$T/r1" of="$T/new" bs=64k seek=16 conv=notrunc,fsync status=none
unmount_img "$T/new"
qemu-img check -q "$R/d/mnt.qcow2" || fail "qemu-img check fails after --create over ssh"
qemu-img convert -f qcow2 -O raw "$R/d/mnt.qcow2" "$T/mnt.raw"
cmp <(dd if="$T/mnt.raw" bs=64k skip=16 count=16 status=none) "$T/r1" ||
    fail "--create over ssh: the data written is not in the image"
note "create with extent files over ssh: they are made on the server, next to the descriptor"
vmdk_extents_made "$(ssh_uri /d/x.vmdk)" "$R/d" x 3 "create over ssh"
qemu-img check -q "$R/d/x.vmdk" || fail "qemu-img check fails on twoGbMaxExtentSparse over ssh"
expect_eq "$(qemu-img info --output=json "$R/d/x.vmdk" | python3 -c '
import json, sys
i = json.load(sys.stdin)
print(i["virtual-size"], len(i["format-specific"]["data"]["extents"]))')" \
    "5368709120 3" "twoGbMaxExtentSparse: size and extents"
"$IMGFUSE" create -F vmdk -o subformat=monolithicFlat "$(ssh_uri /d/f.vmdk)" 64M \
    > /dev/null || fail "vmdk monolithicFlat create over ssh failed"
expect_eq "$(stat -c %s "$R/d/f-flat.vmdk")" 67108864 "monolithicFlat extent size"
qemu-img check -q "$R/d/f.vmdk" || fail "qemu-img check fails on monolithicFlat over ssh"
mount_img "$(ssh_uri /d/f.vmdk)" "$T/f"
head -c 1M /dev/urandom > "$T/r2"
dd if="$T/r2" of="$T/f" bs=64k seek=40 conv=notrunc,fsync status=none
unmount_img "$T/f"
qemu-img convert -f vmdk -O raw "$R/d/f.vmdk" "$T/f.raw"
cmp <(dd if="$T/f.raw" bs=64k skip=40 count=16 status=none) "$T/r2" ||
    fail "monolithicFlat over ssh: the data written is not in the extent"

note "an extent name that exists is refused, and nothing is left behind"
echo keep > "$R/d/e-s002.vmdk"
expect_fail_within 20 "$IMGFUSE" create -F vmdk -o subformat=twoGbMaxExtentSparse \
    "$(ssh_uri /d/e.vmdk)" 5G
expect_err "already exists"
[ ! -e "$R/d/e.vmdk" ] && [ ! -e "$R/d/e-s001.vmdk" ] && [ ! -e "$R/d/e-s003.vmdk" ] ||
    fail "a refused create left files behind: $(ls "$R/d")"
expect_eq "$(cat "$R/d/e-s002.vmdk")" keep "the existing extent name is untouched"

note "qcow2 with an external data file over ssh"
"$IMGFUSE" create -F qcow2 -o data_file=y.data "$(ssh_uri /d/y.qcow2)" 64M \
    > /dev/null || fail "qcow2 data_file create over ssh failed"
[ -f "$R/d/y.data" ] || fail "the data file is not on the server"
# QEMU 7.2 looks for a relative data_file name in its working directory
(cd "$R/d" && qemu-img check -q y.qcow2) || fail "qemu-img check fails on y.qcow2"
mount_img "$(ssh_uri /d/y.qcow2)" "$T/y"
head -c 1M /dev/urandom > "$T/r3"
dd if="$T/r3" of="$T/y" bs=64k seek=7 conv=notrunc,fsync status=none
dd if="$T/r3" of="$T/y" bs=512 seek=100001 count=9 conv=notrunc,fsync status=none
cp "$T/y" "$T/y.shadow"
unmount_img "$T/y"
(cd "$R/d" && qemu-img check -q y.qcow2) || fail "qemu-img check fails after writes"
(cd "$R/d" && qemu-img compare -q -f qcow2 -F raw y.qcow2 "$T/y.shadow") ||
    fail "y.qcow2 with its data file differs from what the mount showed"
# and back: what qemu-io writes into the local files reads through the mount
out=$(cd "$R/d" && qemu-io -r -f qcow2 -c "read -P 0 0 64k" y.qcow2)
! echo "$out" | grep -q "Pattern verification failed" ||
    fail "qemu-io: y.qcow2 does not start with zeroes: $out"
(cd "$R/d" && qemu-io -f qcow2 -c "write -P 0x5a 20M 64k" y.qcow2 > /dev/null)
mount_img -r "$(ssh_uri /d/y.qcow2)" "$T/y"
expect_bytes "$T/y" $((20 << 20)) 65536 Z
cmp <(dd if="$T/y" bs=64k skip=7 count=16 status=none) "$T/r3" ||
    fail "y.qcow2 over ssh: the first write is not read back"
unmount_img "$T/y"

note "a vhdx differencing image over ssh: the parent is on the server"
qemu-img create -q -f vhdx "$R/d/pbase.vhdx" 32M
qemu-io -f vhdx -c 'write -P 0x61 1M 1M' "$R/d/pbase.vhdx" > /dev/null
"$IMGFUSE" create -F vhdx -o parent=pbase.vhdx "$(ssh_uri /d/pchild.vhdx)" 0 \
    > /dev/null || fail "vhdx create with parent= over ssh failed"
"$IMGFUSE" info "$R/d/pchild.vhdx" | grep -qF 'parent relative path: .\pbase.vhdx' ||
    fail "pchild: parent path: $("$IMGFUSE" info "$R/d/pchild.vhdx")"
mount_img -r "$(ssh_uri /d/pchild.vhdx)" "$T/pc"
expect_eq "$(sha "$T/pc")" "$(qemu_raw_sha "$R/d/pbase.vhdx" vhdx)" \
    "a fresh vhdx child over ssh reads as its parent"
unmount_img "$T/pc"
echo OK
