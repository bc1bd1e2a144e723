#!/bin/bash
# An SFTP server that refuses writes (internal-sftp -R): a read-write mount
# fails with a permission-denied message that suggests -r, and a read-only
# mount works.
. "$(dirname "$0")/../lib.sh"
SSH_SFTP_SUBSYSTEM="internal-sftp -R"
. "$(dirname "$0")/ssh-lib.sh"

start_sshd
start_agent
qemu-img create -q -f raw "$SSH_S/d.img" 2M
qemu-io -f raw -c 'write -P 0x42 0 1M' "$SSH_S/d.img" > /dev/null
uri=$(ssh_uri "$SSH_S/d.img")

expect_fail_within 5 "$IMGFUSE" -F raw "$uri" "$T/rw"
expect_err "permission denied opening '$SSH_S/d.img' for writing as user 'root'; mount with -r"
! is_mounted "$T/rw" || fail "a refused read-write mount is mounted"
mount_img -r -F raw "$uri" "$T/ro"
cmp "$T/ro" "$SSH_S/d.img" || fail "read-only mount differs from the remote file"
unmount_img "$T/ro"
echo OK
