#!/bin/bash
# CHAP from the URL, from LIBISCSI_CHAP_* and from a config file; mutual
# CHAP; a header digest the target insists on (CRC32C) is really used; no
# or wrong credentials give a clear error that never shows the password.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/iscsi-lib.sh"

lun=$T/lun.img
head -c 4M /dev/urandom > "$lun"
tgt_start c
tgt_lun c "$lun"
tgt_chap c mutual
tgt c --op update --mode target --tid 1 --name HeaderDigest --value CRC32C
url=$(iscsi_url c)
creds_url=$(iscsi_url c "$CHAP_USER%$CHAP_PASS@")
mutual="target_user=$OUT_USER&target_password=$OUT_PASS"

# refused URL WHAT PATTERN: info fails, says PATTERN, shows no secret
refused() {
    if "$IMGFUSE" info "$1" > "$T/out" 2> "$T/err"; then
        fail "$2: info succeeded"
    fi
    grep -q "$3" "$T/err" || fail "$2: unexpected message: $(cat "$T/err")"
    grep -q "$IQN" "$T/err" || fail "$2: message does not name the target: $(cat "$T/err")"
    ! grep -qE "$CHAP_PASS|$OUT_PASS|wrongsecret99" "$T/err" ||
        fail "$2: a password appears in: $(cat "$T/err")"
}

note "no credentials, wrong password, wrong mutual secret: refused"
refused "$url" "no credentials" "the target wants CHAP credentials"
refused "$(iscsi_url c "$CHAP_USER%wrongsecret99@")" "wrong password" "wrong CHAP credentials"
refused "$creds_url?target_user=$OUT_USER&target_password=wrongsecret99" \
    "wrong mutual secret" "login refused"

note "credentials in the URL, mutual CHAP, CRC32C header digest"
"$IMGFUSE" info "$creds_url?$mutual" > "$T/info" 2>&1 || fail "info: $(cat "$T/info")"
grep -q "^header digest: CRC32C" "$T/info" || fail "digest not negotiated: $(cat "$T/info")"
grep -q "^chap: user $CHAP_USER, mutual" "$T/info" || fail "chap: $(cat "$T/info")"
! grep -qE "$CHAP_PASS|$OUT_PASS" "$T/info" || fail "info shows a password"
"$IMGFUSE" info --json "$creds_url?$mutual" > "$T/info.json" 2>&1 || fail "info --json"
grep -q '"header digest": "CRC32C' "$T/info.json" || fail "json: $(cat "$T/info.json")"
! grep -qE "$CHAP_PASS|$OUT_PASS" "$T/info.json" || fail "info --json shows a password"
mount_img -F raw "$creds_url?$mutual" "$T/m"
cmp "$T/m" "$lun" || fail "content differs (url credentials)"
head -c 64k /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/m" bs=64k seek=5 conv=notrunc,fsync status=none
cmp <(dd if="$lun" bs=64k skip=5 count=1 status=none) "$T/pat" || fail "write (url credentials)"
unmount_img "$T/m"

note "credentials from the environment stay out of the process list"
LIBISCSI_CHAP_USERNAME=$CHAP_USER LIBISCSI_CHAP_PASSWORD=$CHAP_PASS \
    mount_img -r -F raw "$url" "$T/m"
pid=$(cat "$T/pid.$(echo "$T/m" | md5sum | cut -c1-8)")
tr '\0' ' ' < "/proc/$pid/cmdline" > "$T/cmdline" || fail "no imgfuse process $pid"
grep -q "$IQN" "$T/cmdline" || fail "pid $pid is not our mount: $(cat "$T/cmdline")"
! grep -q "$CHAP_PASS" "$T/cmdline" || fail "password in ps"
cmp "$T/m" "$lun" || fail "content differs (environment credentials)"
unmount_img "$T/m"

note "credentials from a config file, target section over [iscsi]"
cat > "$T/iscsi.conf" <<CONF
[iscsi]
  user = "nobody"
  password = "notthisone123"
  header-digest = "NONE"

[iscsi "$IQN"]
  user = "$CHAP_USER"
  password = "$CHAP_PASS"
  initiator-name = "iqn.2024-01.test.imgfuse:initiator"
  header-digest = "CRC32C"
CONF
"$IMGFUSE" info "$url?config=$T/iscsi.conf" > "$T/info" 2>&1 || fail "info: $(cat "$T/info")"
grep -q "^initiator: iqn.2024-01.test.imgfuse:initiator" "$T/info" || fail "initiator: $(cat "$T/info")"
grep -q "^header digest: CRC32C (asked CRC32C)" "$T/info" || fail "digest: $(cat "$T/info")"
mount_img -r -F raw "$url?config=$T/iscsi.conf" "$T/m"
cmp "$T/m" "$lun" || fail "content differs (config credentials)"
unmount_img "$T/m"
refused "$url?config=$T/missing.conf" "missing config" "missing.conf"
echo ok
