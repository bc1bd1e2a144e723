#!/bin/bash
# Raw and qcow2 images over SFTP through imgfuse: the mount reads what the
# oracle reads, writes through the mount land in the remote file (cmp,
# qemu-img check/compare), dotted options and a key file instead of the
# agent work, and a read-only mount refuses writes.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/ssh-lib.sh"

start_sshd
start_agent

note "raw: read, write through the mount, remote file matches"
qemu-img create -q -f raw "$SSH_S/disk.img" 8M
qemu-io -f raw -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 5M 300k' "$SSH_S/disk.img" > /dev/null
mount_img -F raw "$(ssh_uri "$SSH_S/disk.img")" "$T/raw"
expect_eq "$(stat -c %s "$T/raw")" 8388608 "raw mount size"
cmp "$T/raw" "$SSH_S/disk.img" || fail "raw mount differs from the remote file"
head -c 3000000 /dev/urandom > "$T/rand"
dd if="$T/rand" of="$T/raw" bs=1M seek=2 conv=notrunc,fsync status=none
dd if="$T/rand" of="$T/raw" bs=4096 seek=7 count=3 conv=notrunc,fsync status=none
cmp "$T/raw" "$SSH_S/disk.img" || fail "raw mount and remote file differ after writes"
unmount_img "$T/raw"
cmp -n 3000000 -i 0:2097152 "$T/rand" "$SSH_S/disk.img" ||
    fail "the remote file does not hold what was written"

note "qcow2: oracle hash, write, qemu-img check and compare"
qemu-img create -q -f qcow2 "$SSH_S/disk.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x11 0 2M' -c 'write -P 0x22 9M 512k' \
    "$SSH_S/disk.qcow2" > /dev/null
want=$(qemu_raw_sha "$SSH_S/disk.qcow2" qcow2)
mount_img "$(ssh_uri "$SSH_S/disk.qcow2")" "$T/q"
expect_eq "$(sha "$T/q")" "$want" "qcow2 over ssh content"
dd if="$T/rand" of="$T/q" bs=1M seek=12 conv=notrunc,fsync status=none
dd if="$T/rand" of="$T/q" bs=512 seek=3 count=5 conv=notrunc,fsync status=none
cp "$T/q" "$T/q.raw"
unmount_img "$T/q"
oracle_agrees "$SSH_S/disk.qcow2" qcow2 "$T/q.raw" "remote qcow2 after writes over ssh"

note "dotted options and a key file without the agent"
(
    unset SSH_AUTH_SOCK
    "$IMGFUSE" info "driver=ssh,host=127.0.0.1,port=$SSH_PORT,user=root,path=$SSH_S/disk.img,known_hosts=$SSH_KNOWN,identity=$SSH_KEY" > "$T/info"
) || fail "dotted options with identity= do not open"
grep -q "server: 127.0.0.1:$SSH_PORT" "$T/info" || fail "info lacks the server: $(cat "$T/info")"
grep -q "user: root" "$T/info" || fail "info lacks the user"
grep -q "path: $SSH_S/disk.img" "$T/info" || fail "info lacks the path"

note "growable mount: writes past the end and truncate resize the remote file"
qemu-img create -q -f raw "$SSH_S/grow.img" 1M
mount_img --growable -F raw "$(ssh_uri "$SSH_S/grow.img")" "$T/g"
dd if="$T/rand" of="$T/g" bs=64k seek=20 count=2 conv=notrunc,fsync status=none
expect_eq "$(stat -c %s "$SSH_S/grow.img")" 1441792 "remote size after a write past the end"
truncate -s 3M "$T/g"
expect_eq "$(stat -c %s "$SSH_S/grow.img")" 3145728 "remote size after growing"
truncate -s 512k "$T/g"
expect_eq "$(stat -c %s "$SSH_S/grow.img")" 524288 "remote size after shrinking"
cmp "$T/g" "$SSH_S/grow.img" || fail "growable mount differs from the remote file"
unmount_img "$T/g"

note "a file name with a space, '%' and '#', percent-encoded in the URI"
cp "$SSH_S/disk.img" "$SSH_S/50% off #1.img"
"$IMGFUSE" info -F raw "$(ssh_uri "$SSH_S/50%25%20off%20%231.img")" > "$T/info" ||
    fail "an encoded file name does not open"
grep -q "path: $SSH_S/50% off #1.img" "$T/info" || fail "info path: $(cat "$T/info")"

note "read-only mount"
mount_img -r -F raw "$(ssh_uri "$SSH_S/disk.img")" "$T/ro"
cmp "$T/ro" "$SSH_S/disk.img" || fail "read-only mount differs"
if dd if=/dev/zero of="$T/ro" bs=512 count=1 conv=notrunc status=none 2>/dev/null; then
    fail "writing to a read-only mount succeeded"
fi
unmount_img "$T/ro"
echo OK
