#!/bin/bash
# host_key_check: known_hosts (yes, the default), no, and md5/sha1/sha256
# pins in hex and base64; a wrong pin, an unknown host and a changed key
# are refused with a message naming host:port.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/ssh-lib.sh"

start_sshd
start_agent
qemu-img create -q -f raw "$SSH_S/d.img" 1M
base="ssh://root@127.0.0.1:$SSH_PORT$SSH_S/d.img"
hp="127.0.0.1:$SSH_PORT"

opens() {
    "$IMGFUSE" info -F raw "$1" > "$T/info" 2> "$T/err" ||
        fail "'$1' does not open: $(cat "$T/err")"
}

opens_nofmt() {
    "$IMGFUSE" info "$1" > "$T/info" 2> "$T/err" ||
        fail "'$1' does not open: $(cat "$T/err")"
}

note "accepted keys"
opens "$base?known_hosts=$SSH_KNOWN"
opens "$base?known_hosts=$SSH_KNOWN&host_key_check=yes"
grep -q "host key check: known_hosts" "$T/info" || fail "info: $(cat "$T/info")"
opens "$base?host_key_check=no"
grep -q "not verified" "$T/info" || fail "info does not say the key is unverified"
opens "$base?host_key_check=sha256:$SSH_FP_SHA256_HEX"
opens "$base?host_key_check=$SSH_FP_SHA256_B64"
opens "$base?host_key_check=sha256:${SSH_FP_SHA256_B64#SHA256:}"
opens "$base?host_key_check=sha1:$SSH_FP_SHA1"
opens "$base?host_key_check=md5:${SSH_FP_MD5#MD5:}"
opens_nofmt "driver=ssh,host=127.0.0.1,port=$SSH_PORT,path=$SSH_S/d.img,host_key_check=sha1:$SSH_FP_SHA1"

note "without user@ the local login name is used and shown"
opens "ssh://127.0.0.1:$SSH_PORT$SSH_S/d.img?known_hosts=$SSH_KNOWN"
grep -q "^user: $(id -un)$" "$T/info" || fail "info user: $(cat "$T/info")"

note "hashed known_hosts entries"
cp "$SSH_KNOWN" "$T/hashed"
ssh-keygen -q -H -f "$T/hashed" 2>/dev/null
rm -f "$T/hashed.old"
opens "$base?known_hosts=$T/hashed"

note "wrong fingerprint"
bad=$(echo "$SSH_FP_SHA256_HEX" | tr '0-9a-f' '1-9a-f0')
expect_fail_within 5 "$IMGFUSE" info -F raw "$base?host_key_check=sha256:$bad"
expect_err "the host key of $hp does not match host_key_check=sha256"
expect_err "${SSH_FP_SHA256_B64}"
expect_fail_within 5 "$IMGFUSE" info -F raw "$base?host_key_check=md5:00112233445566778899aabbccddeeff"
expect_err "does not match host_key_check=md5"
expect_fail_within 5 "$IMGFUSE" -F raw "$base?host_key_check=sha1:0000000000000000000000000000000000000000" "$T/never"
expect_err "does not match"
! is_mounted "$T/never" || fail "a refused host key left a mount behind"

note "malformed fingerprint"
expect_fail_within 5 "$IMGFUSE" info -F raw "$base?host_key_check=sha1:abc"
expect_err "expected 20 bytes"

note "unknown host"
: > "$T/empty_known"
expect_fail_within 5 "$IMGFUSE" info -F raw "$base?known_hosts=$T/empty_known"
expect_err "the host key of $hp is unknown"
expect_err "$SSH_FP_SHA256_B64"
expect_fail_within 5 "$IMGFUSE" info -F raw "$base?known_hosts=$T/no_such_file"
expect_err "is unknown"

note "changed host key"
ssh-keygen -q -t ed25519 -N '' -f "$T/otherkey"
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$T/otherkey.pub")" > "$T/changed_known"
expect_fail_within 5 "$IMGFUSE" info -F raw "$base?known_hosts=$T/changed_known"
expect_err "the host key of $hp has CHANGED"
echo OK
