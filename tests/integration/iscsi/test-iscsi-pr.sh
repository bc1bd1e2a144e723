#!/bin/bash
# SCSI persistent reservations (--pr=exclusive) on a tgtd LUN, with two
# initiator names as two hosts and pr-peer (libiscsi's own PR encoding,
# a third initiator) as the independent reader: a read-write mount
# registers its key on each session and reserves WRITE EXCLUSIVE -
# REGISTRANTS ONLY; a second writer is refused with the holder's key and
# type, a reader is not; writes from an unregistered initiator conflict;
# dropped sessions re-register (tgt ties registrations to the session);
# unmount releases and unregisters; a killed mount leaves its reservation,
# which a later --pr=exclusive,preempt takes over and says so.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/iscsi-lib.sh"

command -v gcc >/dev/null || fail "gcc is missing; run scripts/install-deps.sh"
gcc -O1 -o "$T/pr-peer" "$(dirname "$0")/pr-peer.c" -liscsi ||
    fail "cannot build pr-peer (libiscsi-dev)"

lun=$T/lun.img
truncate -s 16M "$lun"
tgt_start a
tgt_lun a "$lun"
url=$(iscsi_url a)
HA=iqn.2024-01.test.imgfuse:host-a
HB=iqn.2024-01.test.imgfuse:host-b
HC=iqn.2024-01.test.imgfuse:peer
peer() { "$T/pr-peer" "$url" "$HC" "$@"; }

note "info without a reservation"
"$IMGFUSE" info "$url" > "$T/info" || fail "info: $(cat "$T/info")"
grep -q "^pr registrations: 0 " "$T/info" || fail "info keys: $(cat "$T/info")"
grep -q "^pr reservation: none" "$T/info" || fail "info res: $(cat "$T/info")"

note "host a mounts read-write with --pr=exclusive"
mount_img -F raw --pr=exclusive --pr-key=0xa11ce "$url?initiator_name=$HA" "$T/a"
expect_eq "$(peer res)" "res: a11ce 5" "reservation after mount"
# one registration per session of the mount (2 by default)
expect_eq "$(peer keys)" "keys: a11ce a11ce" "registrations after mount"
"$IMGFUSE" info "$url" > "$T/info"
grep -q "^pr reservation: key 0x00000000000a11ce, Write Exclusive - Registrants Only" \
    "$T/info" || fail "info while reserved: $(cat "$T/info")"
grep -q "^pr registrations: 2: 0x00000000000a11ce, 0x00000000000a11ce" "$T/info" ||
    fail "info keys while reserved: $(cat "$T/info")"
head -c 64k /dev/urandom > "$T/pat"
dd if="$T/pat" of="$T/a" bs=64k conv=notrunc,fsync status=none ||
    fail "the holder cannot write"
cmp -n 65536 "$lun" "$T/pat" || fail "holder's write did not land"
expect_eq "$(peer write read)" "write: conflict
read: good" "an unregistered initiator under the reservation"

note "host b: a second writer is refused, a reader is not"
rc=0
"$IMGFUSE" -f --pr=exclusive --pr-key=b0b "$url?initiator_name=$HB" "$T/b" \
    2> "$T/err" || rc=$?
[ $rc -ne 0 ] || fail "a second --pr=exclusive writer was mounted"
is_mounted "$T/b" && fail "refused mount left a mount behind"
grep -q "reserved by key 0x00000000000a11ce (Write Exclusive - Registrants Only)" \
    "$T/err" || fail "refusal message: $(cat "$T/err")"
grep -q -- "--pr=exclusive,preempt" "$T/err" || fail "refusal hint: $(cat "$T/err")"
note "refused: $(head -1 "$T/err")"
expect_eq "$(peer keys)" "keys: a11ce a11ce" "the refused mount left a registration"
mount_img -F raw -r --pr=exclusive "$url?initiator_name=$HB" "$T/r"
cmp -n 65536 "$T/r" "$T/pat" || fail "reader sees other bytes"
unmount_img "$T/r"

note "dropped sessions log in again, register again and keep the reservation"
cp=$(cat "$ISCSI_S/a/cp")
nexus() {
    tgtadm -C "$cp" --lld iscsi --op show --mode target | awk '/I_T nexus:/{print $3}'
}
sids=$(nexus)
[ -n "$sids" ] || fail "no sessions listed by tgtadm"
for sid in $sids; do
    tgtadm -C "$cp" --lld iscsi --op delete --mode conn --tid 1 --sid "$sid" --cid 0 ||
        fail "cannot drop session $sid"
done
head -c 64k /dev/urandom > "$T/pat2"
for i in 1 2 3 4; do
    dd if="$T/pat2" of="$T/a" bs=64k seek=$i conv=notrunc,fsync status=none ||
        fail "write $i after the sessions were dropped"
done
cmp <(dd if="$lun" bs=64k skip=4 count=1 status=none) "$T/pat2" ||
    fail "write after reconnect did not land"
for sid in $(nexus); do
    [[ " $sids " != *" $sid "* ]] || fail "session $sid was not logged in again"
done
expect_eq "$(peer res)" "res: a11ce 5" "reservation after reconnect"
expect_eq "$(peer write)" "write: conflict" "outsider's write after reconnect"

note "unmount releases and unregisters"
unmount_img "$T/a"
expect_eq "$(peer res keys)" "res: none
keys:" "after unmount"
expect_eq "$(peer write)" "write: good" "outsider's write after unmount"

note "kill -9 leaves the reservation; preempt takes it over"
mount_img -F raw --pr=exclusive --pr-key=a11ce "$url?initiator_name=$HA" "$T/a"
pid=$(cat "$T"/pid.*)
crash_daemon "$pid" "$T/a"
expect_eq "$(peer res)" "res: a11ce 5" "reservation after kill -9"
expect_eq "$(peer write)" "write: conflict" "outsider after kill -9"
rc=0
"$IMGFUSE" -f --pr=exclusive --pr-key=b0b "$url?initiator_name=$HB" "$T/b" \
    2> "$T/err" || rc=$?
[ $rc -ne 0 ] || fail "mounted over a dead holder's reservation without preempt"
grep -q "reserved by key 0x00000000000a11ce" "$T/err" || fail "message: $(cat "$T/err")"
mount_img -F raw --pr=exclusive,preempt --pr-key=b0b "$url?initiator_name=$HB" \
    "$T/b" 2> "$T/err" || fail "preempt mount failed: $(cat "$T/err")"
grep -q "took the reservation of key 0x00000000000a11ce (Write Exclusive - Registrants Only) over" \
    "$T/err" || fail "takeover not reported: $(cat "$T/err")"
expect_eq "$(peer res keys)" "res: b0b 5
keys: b0b b0b" "after the takeover"
dd if="$T/pat" of="$T/b" bs=64k seek=2 conv=notrunc,fsync status=none ||
    fail "the new holder cannot write"
unmount_img "$T/b"
expect_eq "$(peer res keys)" "res: none
keys:" "after the new holder's unmount"

note "the default key is this host's for this image: a killed mount of ours is named so"
mount_img -F raw -o pr=exclusive "$url" "$T/a"
crash_daemon "$(cat "$T"/pid.*)" "$T/a"
rc=0
"$IMGFUSE" -f --pr=exclusive "$url" "$T/b" 2> "$T/err" || rc=$?
[ $rc -ne 0 ] || fail "mounted over our own killed mount without preempt"
grep -q "the key this host uses for this image" "$T/err" || fail "message: $(cat "$T/err")"
mount_img -F raw -o pr=exclusive,pr-preempt "$url" "$T/b" 2> "$T/err" ||
    fail "preempt of our own key: $(cat "$T/err")"
unmount_img "$T/b"
expect_eq "$(peer res keys)" "res: none
keys:" "after preempting our own key and unmounting"

note "bad pr options, and a regular file"
truncate -s 1M "$T/plain.img"
rc=0; "$IMGFUSE" -f --pr=exclusive "$T/plain.img" "$T/p" 2> "$T/err" || rc=$?
[ $rc -ne 0 ] && grep -q "needs a SCSI device or an iscsi:// LUN" "$T/err" ||
    fail "--pr on a regular file: $(cat "$T/err")"
expect_error "$url" "pr-key=0: give the reservation key" -o file.pr=exclusive,file.pr-key=0
rc=0; "$IMGFUSE" info --pr=bogus "$url" 2> "$T/err" >/dev/null || rc=$?
[ $rc -ne 0 ] && grep -q -- "--pr=bogus: not a valid value" "$T/err" ||
    fail "--pr=bogus: $(cat "$T/err")"
echo "ok"
