#!/bin/bash
# Progress on a terminal (script(1) gives one): create with
# preallocation=full, check, and opening a vhdx whose log needs a replay
# show percent and rate on stderr; not when stderr is no terminal, not
# with -q.
. "$(dirname "$0")/../lib.sh"

tty_run() { script -qec "$*" /dev/null | tr '\r' '\n'; }

# create -o preallocation=full: zeroes written with progress up to 100%
tty_run "$IMGFUSE" create -F qcow2 -o preallocation=full "$T/full.qcow2" 128M >"$T/out" \
    || fail "create: $(cat "$T/out")"
grep -q '^preallocating: *[0-9.]*% ([0-9.]* [KMGT]*i*B/s)' "$T/out" || fail "no progress with a rate: $(cat "$T/out")"
grep -q '^preallocating: 100.00%' "$T/out" || fail "progress does not reach 100%: $(cat "$T/out")"
expect_eq "$(grep -c '^preallocating' "$T/out" | awk '$1 > 1 {print "many"}')" many "progress lines"
qemu-img check -q "$T/full.qcow2" || fail "qemu-img check of the preallocated image"
size=$(qemu-img info --output=json "$T/full.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["actual-size"])')
[ "$size" -ge $((128 << 20)) ] || fail "preallocation=full left only $size bytes allocated"

# raw too; and no progress without a terminal, nor with -q
tty_run "$IMGFUSE" create -F raw -o preallocation=full "$T/full.raw" 32M | grep -q '^preallocating: 100.00%' \
    || fail "raw preallocation shows no progress"
"$IMGFUSE" create -F raw -o preallocation=full "$T/p.raw" 32M >"$T/out" 2>&1
grep -q preallocating "$T/out" && fail "progress without a terminal"
tty_run "$IMGFUSE" create -q -F raw -o preallocation=full "$T/q.raw" 32M >"$T/out"
grep -q preallocating "$T/out" && fail "progress with -q"
grep -q "created" "$T/out" || fail "-q create: $(cat "$T/out")"

# check and check -r all, qcow2 and qed
qemu-img create -q -f qcow2 "$T/c.qcow2" 2G
qemu-io -f qcow2 -c 'write 0 1M' -c 'write 1G 1M' "$T/c.qcow2" >/dev/null
tty_run "$IMGFUSE" check "$T/c.qcow2" >"$T/out" || fail "check: $(cat "$T/out")"
grep -q '^checking: 100.00%' "$T/out" || fail "check shows no progress: $(cat "$T/out")"
grep -q 'no errors' "$T/out" || fail "check result: $(cat "$T/out")"
tty_run "$IMGFUSE" check -r all "$T/c.qcow2" | grep -q '^checking: 100.00%' || fail "check -r all: no progress"
tty_run "$IMGFUSE" check -q "$T/c.qcow2" | grep -q '^checking' && fail "check -q shows progress"
qemu-img create -q -f qed "$T/c.qed" 1G
tty_run "$IMGFUSE" check "$T/c.qed" | grep -q '^checking: 100.00%' || fail "qed check: no progress"

# a qcow2 left dirty (lazy refcounts): mounting it rebuilds the refcounts
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$T/d.qcow2" 1G
qemu-io -f qcow2 -c 'write 0 1M' -c 'write 512M 1M' "$T/d.qcow2" >/dev/null
printf '\001' | dd of="$T/d.qcow2" bs=1 seek=79 conv=notrunc status=none
_MOUNTS+=("$T/d.raw")
tty_run "$IMGFUSE" "$T/d.qcow2" "$T/d.raw" >"$T/out" || fail "mount: $(cat "$T/out")"
grep -q '^rebuilding refcounts: 100.00%' "$T/out" || fail "rebuild shows no progress: $(cat "$T/out")"
fusermount3 -u "$T/d.raw"
for i in $(seq 1 100); do qemu-img check -q "$T/d.qcow2" 2>/dev/null && break; sleep 0.05; done
qemu-img check -q "$T/d.qcow2" || fail "qemu-img check after the rebuild"

# a vhdx with a log to replay (a crash between the log and the BAT, as in
# vhdx/test-vhdx-log.sh): opening it shows the replay
img=$T/crash.vhdx
"$IMGFUSE" create -F vhdx -o block_size=1M "$img" 16M >/dev/null
mount_img "$img" "$T/m.raw"
head -c 1M /dev/urandom | dd of="$T/m.raw" bs=1M seek=5 conv=notrunc,fsync status=none
kill -9 "$(cat "$T"/pid.*)"
fusermount3 -u "$T/m.raw" 2>/dev/null || umount -l "$T/m.raw" 2>/dev/null || true
dd if=/dev/zero of="$img" bs=4K seek=$((3 * 256)) count=1 conv=notrunc status=none
qemu-img info "$img" >"$T/qinfo" 2>&1 || true; grep -q "log that needs to be replayed" "$T/qinfo" || fail "no log to replay: $(cat "$T/qinfo")"
tty_run "$IMGFUSE" info "$img" >"$T/out" || fail "info: $(cat "$T/out")"
grep -q '^replaying the vhdx log: 100.00%' "$T/out" || fail "replay shows no progress: $(cat "$T/out")"
echo ok
