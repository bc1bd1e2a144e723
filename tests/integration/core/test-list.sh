#!/bin/bash
# imgfuse list: this user's mounts with source, format, read-only, pid,
# locks and lease, in text and JSON; a killed daemon's mount is not listed.
. "$(dirname "$0")/../lib.sh"

export IMGFUSE_RUNTIME_DIR=$T/run
expect_eq "$("$IMGFUSE" list --json)" "[]" "no mounts yet"
expect_eq "$("$IMGFUSE" list)" "" "no mounts yet (text)"

qemu-img create -q -f qcow2 "$T/a.qcow2" 8M
qemu-img create -q -f vdi "$T/b.vdi" 8M
mount_img "$T/a.qcow2" "$T/a.raw"
mkdir "$T/dir"
mount_img -r -F vdi "$T/b.vdi" "$T/dir"
pa=$(cat "$T/pid.$(echo "$T/a.raw" | md5sum | cut -c1-8)")
pb=$(cat "$T/pid.$(echo "$T/dir" | md5sum | cut -c1-8)")

"$IMGFUSE" list --json > "$T/list.json"
python3 - "$T" "$pa" "$pb" <<'PY' || fail "list --json: $(cat "$T/list.json")"
import json, sys
t, pa, pb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
got = {m["mountpoint"]: m for m in json.load(open(t + "/list.json"))}
assert set(got) == {t + "/a.raw", t + "/dir"}, got
a, b = got[t + "/a.raw"], got[t + "/dir"]
assert a["sources"] == [t + "/a.qcow2"] and a["formats"] == ["qcow2"], a
assert a["read-only"] is False and a["pid"] == pa and a["locks"] == "write", a
assert a["lease"] == "none" and a["leases-held"] == 0, a
assert b["sources"] == [t + "/b.vdi"] and b["formats"] == ["vdi"], b
assert b["read-only"] is True and b["pid"] == pb and b["locks"] == "read", b
PY
"$IMGFUSE" list > "$T/list.txt"
grep -qx "$T/a.raw" "$T/list.txt" || fail "text list: $(cat "$T/list.txt")"
grep -qx "  source:     $T/b.vdi, vdi" "$T/list.txt" || fail "text list: $(cat "$T/list.txt")"
grep -qx "  pid:        $pa" "$T/list.txt" || fail "text list pid: $(cat "$T/list.txt")"

# unmounted: gone; a killed daemon (state file left behind): not listed,
# and its file removed
unmount_img "$T/dir"
kill -9 "$pa"
for i in $(seq 1 100); do kill -0 "$pa" 2>/dev/null || break; sleep 0.05; done
fusermount3 -u "$T/a.raw" 2>/dev/null || umount -l "$T/a.raw"
[ -f "$T/run/$pa.state" ] || fail "the killed daemon's state file is not there to test"
expect_eq "$("$IMGFUSE" list --json)" "[]" "after unmount and kill"
[ -f "$T/run/$pa.state" ] && fail "stale state file kept"
if "$IMGFUSE" list extra 2>"$T/err"; then fail "list took an argument"; fi
grep -q "usage: imgfuse list" "$T/err" || fail "list usage: $(cat "$T/err")"
echo ok
