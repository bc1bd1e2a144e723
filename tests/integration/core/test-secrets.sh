#!/bin/bash
# --object secret (QEMU's syntax) on every command, in -o for mount(8), and
# --key-prompt: bad specs are explained without showing the secret, inline
# data= warns and never stays in the daemon's command line.
. "$(dirname "$0")/../lib.sh"

img=$T/disk.img
qemu-img create -q -f raw "$img" 1M

# bad specs: exit 2, a message naming what to fix, never the secret
bad() {  # SPEC PATTERN
    local rc=0
    "$IMGFUSE" info --object "$1" "$img" >/dev/null 2>"$T/err" || rc=$?
    expect_eq "$rc" 2 "exit status for --object $1"
    expect_err "$2"
    if grep -q hunter "$T/err"; then fail "secret shown: $(cat "$T/err")"; fi
}
bad "secret,id=k" "exactly one of data=STRING or file=PATH"
bad "secret,data=hunter2" "id=ID"
bad "secret,id=k,data=hunter2,hunter3" "a comma inside data= is written ',,'"
bad "secret,id=k,data=hunt*r2,format=base64" "not valid base64"
bad "secret,id=k,file=$T/missing" "$T/missing"
bad "secret,id=k,fille=/x" "did you mean 'file'"
bad "iothread,id=k" "only secret objects"
rc=0
"$IMGFUSE" info --object secret,id=k,data=a --object secret,id=k,data=b \
    "$img" >/dev/null 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "a duplicate id"
expect_err "defined twice"

# every command takes --object; data= warns, file= does not
printf 'pass\n' > "$T/key"
"$IMGFUSE" info --object "secret,id=k,file=$T/key" "$img" >/dev/null 2>"$T/err"
[ ! -s "$T/err" ] || fail "file= secret printed: $(cat "$T/err")"
"$IMGFUSE" check --object secret,id=k,data=hunter2 "$img" >/dev/null 2>"$T/err" || true
expect_err "warning: --object secret,id=k,data=...: a secret given inline is visible"
if grep -q hunter "$T/err"; then fail "secret shown: $(cat "$T/err")"; fi
"$IMGFUSE" create -F raw --object secret,id=k,format=base64,data=aHVudGVyMg== \
    "$T/new.img" 1M 2>"$T/err"
expect_err "visible to other users"

# the daemon's command line keeps no inline secret, from --object or -o
mount_img -r -F raw --object secret,id=a,data=hunter2,,x "$img" "$T/m1"
mount_img -o ro,format=raw,object=secret,id=b,data=hunter3 "$img" "$T/m2"
for m in m1 m2; do
    pid=$(cat "$T/pid.$(echo "$T/$m" | md5sum | cut -c1-8)")
    tr '\0' ' ' < "/proc/$pid/cmdline" > "$T/cmdline"
    grep -q "object" "$T/cmdline" || fail "not the daemon's cmdline: $(cat "$T/cmdline")"
    if grep -q hunter "$T/cmdline"; then fail "secret in ps: $(cat "$T/cmdline")"; fi
    if ps -ww -o args= -p "$pid" | grep -q hunter; then fail "secret in ps"; fi
    unmount_img "$T/$m"
done
echo ok
